"""Events of status and reader messages (streaming/decoding/events.py) through the per-record step the processor
and reprocessing share (streaming/decoding/record.py): which message gives which events, with which registry
ids, and which is dead-lettered instead (and then gives neither events nor readings).

The expected events are written out by hand from docs/domain.md's "Events" table; the registry is the sample
registry as value objects (tests/sample_registry.py)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from streaming.decoding.events import (
    Credential,
    Event,
    encode_event,
    encode_seen,
    silence_after_s,
)
from streaming.decoding.record import decode_record, resolve_record
from streaming.decoding.topology import ControllerTopology, WiredDevice
from streaming.errors import DecodeError
from tests.sample_registry import TOPOLOGY, wired_device

MAX = 64 * 1024
TS_TEXT = "2026-03-01 10:03:00.250000"
TS = 1_772_359_380_250_000  # 2026-03-01T10:03:00.25Z
FP = "0123456789abcdef" * 4


def controllers() -> dict[str, ControllerTopology]:
    macs = sorted({m for m, _, _ in TOPOLOGY})
    return {
        mac: ControllerTopology(
            mac,
            100 + i,
            frozenset(c for m, c, _ in TOPOLOGY if m == mac),
            {(c, p): d for (m, c, p), d in TOPOLOGY.items() if m == mac},
        )
        for i, mac in enumerate(macs)
    }


REGISTRY = controllers()


def decode(topic: str, payload: dict[str, Any] | bytes) -> tuple[list[Any], list[Event]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    decoded = decode_record(topic, raw, REGISTRY.get, MAX)
    return decoded.readings, decoded.events


def state(mac: str, cid: int | None, conn: int, comp: str, dev: int | None, st: str, topic: str) -> Event:
    return Event(TS, mac, cid, conn, comp, dev, "state", st, None, None, topic)


def test_door_sensors_give_one_state_event_per_door_beside_their_readings() -> None:
    topic = "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors"
    readings, events = decode(topic, {"timestamp": TS_TEXT, "door-sensor-1": True, "door-sensor-2": False})
    # Main Door (device 13, DS-2) has both as Bool datapoints: the readings stay as they were.
    assert sorted((r.device_id, r.datapoint_id, r.value) for r in readings) == [(13, 401, 1.0), (13, 402, 0.0)]
    assert events == [
        state("aabbccddee01", 100, 2, "door-sensor-1", 13, "open", topic),
        state("aabbccddee01", 100, 2, "door-sensor-2", 13, "closed", topic),
    ]


@pytest.mark.parametrize(
    ("component", "field", "when_true", "when_false"),
    [
        ("exit-buttons", "exit-button-2", "pressed", "released"),
        ("motion-sensor-3", "status", "detected", "clear"),
        ("strike-1", "status", "powered", "unpowered"),
        ("siren-2", "status", "powered", "unpowered"),
    ],
)
def test_each_status_component_names_its_states(component: str, field: str, when_true: str, when_false: str) -> None:
    # Connector J3 of aabbccddee01 is not in the registry: the events are kept, with the controller's id only.
    topic = f"stat/f2-aabbccddee01/access-control-mode/J3/{component}"
    event_component = field if field != "status" else component
    for value, expected in ((True, when_true), (False, when_false)):
        readings, events = decode(topic, {"timestamp": TS_TEXT, field: value, "other": 5})
        assert readings == []
        assert events == [state("aabbccddee01", 100, 3, event_component, None, expected, topic)]
        assert not events[0].registered


def test_a_registered_motion_sensor_gives_its_reading_and_its_event() -> None:
    topic = "stat/f2-aabbccddee04/alarm-mode/J1/motion-sensor-1"
    readings, events = decode(topic, {"timestamp": TS_TEXT, "status": True})
    assert [(r.device_id, r.datapoint_id, r.value) for r in readings] == [(16, 501, 1.0)]
    assert events == [state("aabbccddee04", 103, 1, "motion-sensor-1", 16, "detected", topic)]


def test_an_unknown_controller_still_gives_events_with_null_ids_and_no_dead_letter() -> None:
    topic = "stat/f2-0000000000aa/access-control-mode/J1/door-sensors"
    readings, events = decode(topic, {"timestamp": TS_TEXT, "door-sensor-1": False})
    assert readings == []
    assert events == [state("0000000000aa", None, 1, "door-sensor-1", None, "closed", topic)]


def test_a_wired_device_without_the_field_as_a_bool_datapoint_leaves_the_device_id_null() -> None:
    # A door-sensors device whose template knows door-sensor-1 only.
    one_door = wired_device(13, "Main Door", "DS-2")
    one_door = WiredDevice(13, "Main Door", 4, "DS-2", "none", one_door.datapoints[:1])
    registry = {"aabbccddee01": ControllerTopology("aabbccddee01", 100, frozenset({2}), {(2, 1): one_door})}
    topic = "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors"
    body = json.dumps({"timestamp": TS_TEXT, "door-sensor-1": True, "door-sensor-2": True}).encode()
    decoded = decode_record(topic, body, registry.get, MAX)
    assert [(r.device_id, r.datapoint_id) for r in decoded.readings] == [(13, 401)]
    assert [(e.component, e.device_id) for e in decoded.events] == [("door-sensor-1", 13), ("door-sensor-2", None)]


@pytest.mark.parametrize("bad", [1, 0, "true", None, [True]])
def test_a_status_field_that_is_not_a_json_boolean_dead_letters_the_message(bad: object) -> None:
    with pytest.raises(DecodeError) as caught:
        # door-sensor-2 is good: the whole message still goes, with neither readings nor events.
        decode(
            "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors",
            {"timestamp": TS_TEXT, "door-sensor-2": True, "door-sensor-1": bad},
        )
    assert caught.value.reason == "malformed-payload"
    assert "door-sensor-1" in caught.value.detail


def test_fields_outside_the_table_are_ignored() -> None:
    # door-sensor-01 is not door-sensor-N; "status" means nothing on exit-buttons.
    _, events = decode(
        "stat/f2-aabbccddee01/access-control-mode/J3/exit-buttons",
        {"timestamp": TS_TEXT, "door-sensor-01": 7, "status": "x", "exit-button-1": False},
    )
    assert [(e.component, e.state) for e in events] == [("exit-button-1", "released")]


def test_sensor_frames_give_no_events_and_keep_their_lookup_reasons() -> None:
    frame = {"timestamp": TS_TEXT, "data": "01 03 06 09 30 11 9E 02 64 05 B1"}
    readings, events = decode("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", frame)
    assert len(readings) == 3 and events == []
    for topic, reason in (
        ("tele/f2-0000000000aa/sensor-mode/J1/sensor-1", "unknown-controller"),
        ("tele/f2-aabbccddee01/sensor-mode/J4/sensor-1", "unknown-connector"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-6", "unwired-position"),
    ):
        with pytest.raises(DecodeError) as caught:
            decode(topic, frame)
        assert caught.value.reason == reason


READER = "tele/f2-aabbccddee01/access-control-mode/J1/reader-1"


def test_a_redacted_scan_is_an_access_event_with_its_fingerprint() -> None:
    credential = {"fingerprint": FP, "key_id": "k1", "length": 11}
    readings, events = decode(READER, {"timestamp": TS_TEXT, "credential": credential})
    assert readings == []
    # J1 position 1 holds a sensor (Living Room Env, ENV-S1) in the sample: not this reader, so no device id.
    assert events == [
        Event(TS, "aabbccddee01", 100, 1, "reader-1", None, "access", None, Credential(FP, "k1", 11), None, READER)
    ]


def test_a_reader_wired_in_the_registry_gives_its_device_id() -> None:
    reader = WiredDevice(21, "Front Reader", 9, "RD-1", "none", ())
    registry = {"aabbccddee01": ControllerTopology("aabbccddee01", 100, frozenset({1}), {(1, 1): reader})}
    body = json.dumps({"timestamp": TS_TEXT, "indicator": "02 02 01 00 00 00 03 03"}).encode()
    (event,) = decode_record(READER, body, registry.get, MAX).events
    assert (event.kind, event.device_id, event.indicator_hex, event.credential) == (
        "indicator",
        21,
        "02 02 01 00 00 00 03 03",
        None,
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"timestamp": TS_TEXT, "data": "b'QR-TOKEN-1'"},  # not redacted: a token in clear
        {"timestamp": TS_TEXT},
        {"timestamp": TS_TEXT, "credential": {"fingerprint": FP, "key_id": "k1", "length": 1}, "indicator": "02 03"},
        {"timestamp": TS_TEXT, "credential": "QR-TOKEN-1"},
        {"timestamp": TS_TEXT, "credential": {"fingerprint": FP.upper(), "key_id": "k1", "length": 1}},
        {"timestamp": TS_TEXT, "credential": {"fingerprint": FP, "key_id": "k:1", "length": 1}},
        {"timestamp": TS_TEXT, "credential": {"fingerprint": FP, "key_id": "k1", "length": True}},
        {"timestamp": TS_TEXT, "credential": {"fingerprint": FP, "key_id": "k1", "length": -1}},
        {"timestamp": TS_TEXT, "indicator": "02 02  03"},
        {"timestamp": TS_TEXT, "indicator": "02 0a 03"},
        {"timestamp": TS_TEXT, "indicator": " ".join(["02"] * 33)},
    ],
)
def test_a_reader_payload_not_in_the_redacted_form_is_malformed_and_never_quoted(payload: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(READER, payload)
    assert caught.value.reason == "malformed-payload"
    assert "QR-TOKEN" not in caught.value.detail and FP not in caught.value.detail.lower()


def test_an_unparsed_reader_payload_is_malformed_with_the_bridges_reason_before_any_timestamp_check() -> None:
    unparsed = {"unparsed": "payload is not JSON", "credential": {"fingerprint": FP, "key_id": "k1", "length": 9}}
    with pytest.raises(DecodeError) as caught:
        decode(READER, unparsed)  # no timestamp: the bridge keeps one only when it was a string
    assert caught.value.reason == "malformed-payload"
    assert caught.value.detail == "the bridge could not read this reader payload: payload is not JSON"


def test_resolve_record_keeps_status_messages_whatever_the_registry_knows() -> None:
    body = json.dumps({"timestamp": TS_TEXT, "status": True}).encode()
    resolved = resolve_record("stat/f2-0000000000aa/alarm-mode/J1/siren-1", body, REGISTRY.get, MAX)
    assert (resolved.device, resolved.controller) == (None, None)
    resolved = resolve_record("stat/f2-aabbccddee04/alarm-mode/J1/motion-sensor-1", body, REGISTRY.get, MAX)
    assert resolved.device is TOPOLOGY[("aabbccddee04", 1, 1)]
    assert resolved.controller is REGISTRY["aabbccddee04"]


def test_the_event_record_is_the_contracts_json() -> None:
    event = Event(TS, "aabbccddee01", None, 1, "reader-1", 21, "access", None, Credential(FP, "k2", 0), None, READER)
    assert orjson.loads(encode_event(event)) == {
        "time": "2026-03-01T10:03:00.250000Z",
        "controller_mac": "aabbccddee01",
        "controller_id": None,
        "connector": 1,
        "component": "reader-1",
        "device_id": 21,
        "kind": "access",
        "state": None,
        "credential_fingerprint": FP,
        "credential_key_id": "k2",
        "credential_length": 0,
        "indicator_hex": None,
        "mqtt_topic": READER,
    }
    seen = orjson.loads(encode_seen("aabbccddee01", 7, TS, 90.0))
    assert seen["kind"] == "seen" and seen["time"] == seen["received_at"] == "2026-03-01T10:03:00.250000Z"
    assert (seen["connector"], seen["component"], seen["silence_after_s"], seen["controller_id"]) == (
        0,
        "controller",
        90.0,
        7,
    )


def test_silence_is_the_longest_expected_interval_times_the_setting_or_the_default() -> None:
    env = WiredDevice(1, "env", 1, "ENV-S1", "none", (), expected_interval_s=30)
    slow = WiredDevice(2, "slow", 2, "PS-1", "none", (), expected_interval_s=120)
    door = WiredDevice(3, "door", 4, "DS-2", "none", ())
    both = ControllerTopology("aabbccddee01", 1, frozenset({1}), {(1, 1): env, (1, 2): slow, (1, 3): door})
    assert silence_after_s(both, 3, 300) == 360.0
    assert silence_after_s(ControllerTopology("aabbccddee02", 2, frozenset({1}), {(1, 1): door}), 3, 300) == 300.0
    assert silence_after_s(None, 3, 45.5) == 45.5


def test_the_expected_interval_survives_the_cache_serialisation() -> None:
    env = WiredDevice(1, "env", 1, "ENV-S1", "none", (), expected_interval_s=30)
    door = WiredDevice(3, "door", 4, "DS-2", "none", ())
    topology = ControllerTopology("aabbccddee01", 1, frozenset({1}), {(1, 1): env, (1, 2): door})
    again = ControllerTopology.from_json(json.loads(json.dumps(topology.to_json())))
    assert again == topology
    assert again.wired[(1, 1)].expected_interval_s == 30 and again.wired[(1, 2)].expected_interval_s is None
