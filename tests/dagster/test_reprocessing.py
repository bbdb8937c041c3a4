"""Reprocessing after a registry fix: raw records published to f2.raw as the bridge writes them are
re-decoded for one device and one window; the stored readings and their aggregates change there only.

The test owns what it reads and changes: a controller with a random MAC, its two devices and a template of its
own (the decimals mistake and its fix touch no other device), so neither what other tests published to f2.raw
nor what they left in the registry or decoded_data changes its figures, in whatever order the tests run. Its
readings stay in decoded_data: their device ids are this run's alone, and a DELETE would fail on a full-edition
server once their chunk is compressed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from confluent_kafka import Producer

from f2_platform.defs.reprocessing.followup_sensor import reprocess_followup_sensor
from f2_platform.registry.sample import TEMPLATES, WiringSpec
from f2_platform.registry.seed import seed_fleet
from simulator.endpoints import device_time
from simulator.frames import encode_frame
from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.hex import format_hex
from streaming.decoding.topology import WiredDevice
from streaming.decoding.topology_store import RegistryStore
from streaming.kafka import topics
from streaming.mqtt.topic import build_topic
from tests.dagster.conftest import (
    Reading,
    assert_matches,
    day_key,
    day_start,
    expected_aggregates,
    hour_key,
    insert_readings,
    stored_aggregates,
)

pytestmark = pytest.mark.integration

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def set_decimals(dsn: str, datapoint_id: int, decimals: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as reg:
        reg.execute('UPDATE "VtDevice".datapoints SET decimals = %s WHERE datapointid = %s', (decimals, datapoint_id))


@pytest.fixture()
def own_wiring(migrated) -> Iterator[tuple[str, WiredDevice, WiredDevice]]:
    """A controller of this test (random MAC) with two devices of a template of its own, a copy of ENV-S1:
    (MAC, the device at J1 position 1, the one at position 2); removed from the registry afterwards."""
    mac = "e9" + uuid.uuid4().hex[:10]
    env = next(t for t in TEMPLATES if t.name == "ENV-S1")
    template = replace(env, name=f"ENV-S1 reprocess {mac}")
    controller_template = next(t for t in TEMPLATES if t.name == "F2 Controller")
    wiring = [WiringSpec(mac, 1, p, f"Env {p} {mac}", template.name) for p in (1, 2)]
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        with reg.transaction():
            seed_fleet(reg, [(f"Controller {mac}", mac)], wiring, [template, controller_template])
        store = RegistryStore(migrated.registry_dsn)
        try:
            _, topology = store.load(mac)
        finally:
            store.close()
        try:
            assert topology is not None
            yield mac, topology.wired[(1, 1)], topology.wired[(1, 2)]
        finally:
            ids = [w.device_id for w in topology.wired.values()] if topology is not None else []
            reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = %s', (mac,))  # cascades to its pins
            reg.execute('DELETE FROM "VtDevice".devices WHERE deviceid = ANY(%s)', (ids,))
            reg.execute('DELETE FROM "VtDevice".devicetemplates WHERE name = %s', (template.name,))


def test_decimals_fix_corrects_the_chosen_window_only(migrated, ts, code_location, instance, own_wiring) -> None:
    mac, living, hallway = own_wiring
    temperature = next(dp for dp in living.datapoints if dp.label == "Temperature")
    assert temperature.decimals == 2  # the correct value, as ENV-S1 has it
    # The mistake while the readings arrived: Temperature with three decimals.
    set_decimals(migrated.registry_dsn, temperature.datapoint_id, 3)

    # Inside f2.raw's retention (7 days): the broker deletes older records whenever its retention check runs,
    # possibly before the job reads them (the window starts a day before `day`).
    day = day_start(datetime.now(UTC) - 5 * DAY)
    windows = {"before": day - DAY + 10 * HOUR, "chosen": day + 10 * HOUR, "after": day + 14 * HOUR}
    producer = Producer(migrated.kafka_config())
    original: list[Reading] = []
    raw_temperature: dict[tuple[int, datetime], int] = {}
    for hour in windows.values():
        for device, position in ((living, 1), (hallway, 2)):
            for i in range(6):
                at = hour + timedelta(minutes=10 * i, seconds=3 + position)
                # What the sensor measures, as integers on the wire: Temperature 21.57 °C is 2157.
                raw = {"Temperature": 2100 + 17 * i + position, "Humidity": 4000 + 3 * i, "CO2": 600 + 11 * i}
                values = {
                    "Temperature": raw["Temperature"] / 100,
                    "Humidity": raw["Humidity"] / 100,
                    "CO2": float(raw["CO2"]),
                }
                frame = encode_frame(values, device.datapoints)
                payload = json.dumps({"timestamp": device_time(micros(at)), "data": format_hex(frame)}).encode()
                received = at + timedelta(seconds=1)
                producer.produce(
                    topics.RAW,
                    key=mac.encode(),
                    value=payload,
                    timestamp=int(received.timestamp() * 1000),
                    headers=[
                        (
                            topics.H_MQTT_TOPIC,
                            build_topic("tele", mac, "sensor-mode", 1, f"sensor-{position}").encode(),
                        ),
                        (topics.H_RECEIVED_AT, rfc3339_from_us(micros(received)).encode()),
                    ],
                )
                # What the sink stored when they arrived, decoded while the registry said Temperature had
                # three decimals (the mistake): 2.157 °C instead of 21.57 °C.
                stored = {**values, "Temperature": raw["Temperature"] / 1000}
                for dp in device.datapoints:
                    original.append((at, device.device_id, dp.datapoint_id, stored[dp.label]))
                raw_temperature[(device.device_id, at)] = raw["Temperature"]
    assert producer.flush(30) == 0
    insert_readings(ts, original)

    devices = (living.device_id, hallway.device_id)
    hourly_keys = [hour_key(h) for h in windows.values()]
    for key in hourly_keys:
        assert (
            code_location.resolve_job_def("readings_hourly_job")
            .execute_in_process(instance=instance, partition_key=key)
            .success
        )
    for d in (day - DAY, day):
        assert (
            code_location.resolve_job_def("readings_daily_job")
            .execute_in_process(instance=instance, partition_key=day_key(d))
            .success
        )
    hourly_before = {
        name: stored_aggregates(ts, "readings_hourly", devices, hour, hour + HOUR) for name, hour in windows.items()
    }
    daily_before = stored_aggregates(ts, "readings_daily", devices, day - DAY, day + DAY)

    chosen = windows["chosen"]
    # The registry fix, then the reprocessing of one window for one device.
    set_decimals(migrated.registry_dsn, temperature.datapoint_id, 2)
    config = {
        "start": chosen.isoformat(),
        "end": (chosen + HOUR).isoformat(),
        "device_ids": [living.device_id],
    }
    result = code_location.resolve_job_def("reprocess_job").execute_in_process(
        instance=instance, run_config={"ops": {"reprocess_raw_window": {"config": config}}}
    )
    assert result.success
    summary = result.output_for_node("reprocess_raw_window")
    assert summary["records_in_scope"] == 6
    assert summary["rows_changed"] == 6  # the six temperatures; humidity and CO2 decode as before
    assert summary["undecodable_by_reason"] == {}

    corrected = []
    for at, device_id, datapoint_id, value in original:
        if device_id == living.device_id and datapoint_id == temperature.datapoint_id and chosen <= at < chosen + HOUR:
            value = raw_temperature[(device_id, at)] / 100
        corrected.append((at, device_id, datapoint_id, value))
    stored = ts.execute(
        'SELECT "timestamp", device_id, datapoint_id, value FROM decoded_data '
        'WHERE device_id = ANY(%s) AND "timestamp" >= %s AND "timestamp" < %s',
        (list(devices), day - DAY, day + DAY),
    ).fetchall()
    assert sorted((t.astimezone(UTC), d, p, v) for t, d, p, v in stored) == sorted(corrected)

    # The follow-up sensor asks for exactly the window's partitions; their runs correct the aggregates.
    context = dg.build_run_status_sensor_context(
        sensor_name="reprocess_followup_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )
    requests = reprocess_followup_sensor(context)
    assert isinstance(requests, list) and all(isinstance(r, dg.RunRequest) for r in requests)
    assert sorted((r.job_name, r.partition_key) for r in requests) == [
        ("readings_daily_job", day_key(day)),
        ("readings_hourly_job", hour_key(chosen)),
    ]
    for request in requests:
        assert (
            code_location.resolve_job_def(request.job_name)
            .execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
            .success
        )

    for name, hour in windows.items():
        after = stored_aggregates(ts, "readings_hourly", devices, hour, hour + HOUR)
        if name == "chosen":
            assert after != hourly_before[name]
            assert_matches(
                after,
                {k: v for k, v in expected_aggregates(corrected, HOUR).items() if hour <= k[0] < hour + HOUR},
            )
        else:
            assert after == hourly_before[name]
    daily_after = stored_aggregates(ts, "readings_daily", devices, day - DAY, day + DAY)
    assert {k: v for k, v in daily_after.items() if k[0] < day} == {k: v for k, v in daily_before.items() if k[0] < day}
    assert_matches(daily_after, expected_aggregates(corrected, DAY))
