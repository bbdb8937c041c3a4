"""Registry rows the reference deployment's tools leave behind, seen by the decoder: a wired device whose template
does not exist, an empty or unknown `dataencoding`. Every frame of such a device is dead-lettered with a detail
that names the row and what it holds, never silently dropped; nothing here needs a database."""

from __future__ import annotations

import pytest

from streaming.decoding.frames import decode_frame, decode_status
from streaming.decoding.native import frame_records
from streaming.decoding.payload import parse_payload
from streaming.decoding.topology import FRAME_CHECK_MODBUS_CRC, ControllerTopology, Datapoint, WiredDevice
from streaming.decoding.topology_store import build_topology, topology_sql, version_sql
from streaming.errors import DecodeError
from streaming.mqtt.topic import parse_topic

TS = 1_700_000_000_000_000
MAC = "aabbccddee09"
# A frame of an ENV-S1 (CRC 0xBE39, low byte first): Temperature 21.05, Humidity 50.00, CO2 800.
ENV_FRAME = bytes.fromhex("01 03 06 08 39 13 88 03 20 39 BE")


def row(
    connector: int | None,
    position: int | None,
    device: tuple[int, str, int | None, str | None] | None,
    datapoint: tuple[int, str, str, int, int, int] | None = None,
) -> tuple:
    """One row of TOPOLOGY_SQL: (controller id, connector, position, device id, name, the device's
    devicetemplateid, template name (None: no such template), frame check, datapoint columns..., the template's
    expected_interval_s)."""
    device_id, name, template_id, template_name = device or (None, None, None, None)
    frame_check = None if template_name is None else FRAME_CHECK_MODBUS_CRC
    dp = datapoint or (None, None, None, None, None, None)
    return (1, connector, position, device_id, name, template_id, template_name, frame_check, *dp, "", None, None, None)


def test_a_wired_device_whose_template_does_not_exist_carries_the_problem() -> None:
    topology = build_topology(MAC, [row(1, 1, (77, "Garage Env", 999, None))])
    assert topology is not None
    device = topology.resolve(1, 1)
    assert device.device_id == 77 and device.datapoints == ()
    assert device.registry_problem is not None
    assert "'Garage Env' (id 77)" in device.registry_problem
    assert "template id 999" in device.registry_problem and "devicetemplates" in device.registry_problem


def test_a_wired_device_without_template_id_carries_the_problem() -> None:
    topology = build_topology(MAC, [row(2, 3, (78, "Loose", None, None))])
    assert topology is not None
    problem = topology.resolve(2, 3).registry_problem
    assert problem is not None and "devicetemplateid is NULL" in problem


def test_a_device_with_its_template_has_no_problem() -> None:
    rows = [row(1, 1, (5, "Living Room Env", 3, "ENV-S1"), (11, "Temperature", "Int16", 3, 2, 2))]
    topology = build_topology(MAC, rows)
    assert topology is not None
    device = topology.resolve(1, 1)
    assert device.registry_problem is None and device.template_id == 3


@pytest.mark.parametrize("problem", [None, "device 'x' (id 1) has template id 9, which is not in the registry"])
def test_the_problem_survives_the_cache_format(problem: str | None) -> None:
    device = WiredDevice(1, "x", 9, "", "none", (), registry_problem=problem)
    topology = ControllerTopology(MAC, 4, frozenset({1}), {(1, 1): device})
    assert ControllerTopology.from_json(topology.to_json()) == topology


def test_a_cache_entry_written_before_the_problem_existed_reads_as_no_problem() -> None:
    device = WiredDevice(1, "x", 9, "ENV-S1", "none", ())
    data = ControllerTopology(MAC, 4, frozenset({1}), {(1, 1): device}).to_json()
    assert "registry_problem" not in data["wired"][0]  # type: ignore[index]
    assert ControllerTopology.from_json(data).resolve(1, 1).registry_problem is None


def missing_template(device_id: int) -> WiredDevice:
    return WiredDevice(
        device_id,
        "Garage Env",
        999,
        "",
        "none",
        (),
        registry_problem=f"device 'Garage Env' (id {device_id}) has "
        "template id 999, which is not in the registry (devicetemplates)",
    )


def test_frames_of_a_device_without_template_are_dead_lettered_not_dropped() -> None:
    device = missing_template(801)
    for _ in range(2):  # the layout remembers the problem; every frame raises
        with pytest.raises(DecodeError) as caught:
            decode_frame(ENV_FRAME, device, TS)
        assert caught.value.reason == "unwired-position"
        assert "template id 999" in caught.value.detail


def test_the_native_path_hands_a_device_without_template_to_the_decoder_that_explains() -> None:
    topic = parse_topic(f"tele/f2-{MAC}/sensor-mode/J1/sensor-1")
    payload = parse_payload(b'{"timestamp": "2025-01-01 00:00:00", "data": "01 03 06 08 39 13 88 03 20 39 BE"}', 65536)
    with pytest.raises(DecodeError) as caught:
        frame_records(topic, payload, missing_template(802))
    assert caught.value.reason == "unwired-position" and "(id 802)" in caught.value.detail


def test_status_of_a_device_without_template_gives_no_reading_and_no_error() -> None:
    # Status messages keep their content as events whatever the registry holds (docs/domain.md §6); only
    # readings need the template, and f2 db check lists the device.
    assert decode_status({"door-sensor-1": True}, missing_template(803), TS) == []


@pytest.mark.parametrize("encoding", ["", "int16", "String"])
def test_a_frame_datapoint_with_an_unknown_encoding_names_the_datapoint_and_the_encoding(encoding: str) -> None:
    device = WiredDevice(
        804,
        "Bedroom Env",
        3,
        "ENV-S1",
        FRAME_CHECK_MODBUS_CRC,
        (Datapoint(11, "Temperature", "Int16", 3, 2, 2, "°C"), Datapoint(12, "Humidity", encoding, 5, 2, 2, "%")),
    )
    with pytest.raises(DecodeError) as caught:
        decode_frame(ENV_FRAME, device, TS)
    assert caught.value.reason == "frame-length"
    assert f"datapoint 'Humidity' (id 12) has encoding {encoding!r}" in caught.value.detail


def door(encoding_2: str) -> WiredDevice:
    return WiredDevice(
        805,
        "Back Door",
        4,
        "DS-2",
        "none",
        (Datapoint(21, "door-sensor-1", "Bool", 0, 0, 0, ""), Datapoint(22, "door-sensor-2", encoding_2, 0, 0, 0, "")),
    )


def test_a_status_field_of_a_datapoint_with_an_empty_encoding_gives_no_reading_until_repaired() -> None:
    fields = {"door-sensor-1": True, "door-sensor-2": False}
    assert [(r.datapoint_id, r.value) for r in decode_status(fields, door(""), TS)] == [(21, 1.0)]
    assert [(r.datapoint_id, r.value) for r in decode_status(fields, door("Bool"), TS)] == [(21, 1.0), (22, 0.0)]


def test_topology_sql_names_the_configured_schema() -> None:
    default, other = topology_sql(), topology_sql("Registry_2")
    assert default.count('"VtDevice".') == 6 and '"Registry_2"' not in default
    assert other.count('"Registry_2".') == 6 and "VtDevice" not in other
    assert version_sql("Registry_2") == 'SELECT version FROM "Registry_2".f2_registry_version'
