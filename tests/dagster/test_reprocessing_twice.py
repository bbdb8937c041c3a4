"""Reprocessing is idempotent: the same window reprocessed twice in a row corrects the readings once; the second
run re-decodes the same records and changes no row.

The test owns what it reads and changes: a controller with a random MAC and a template of its own (the decimals
mistake and its fix touch no other device); its registry rows are removed afterwards, its readings stay (their
device ids are this run's alone)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Producer

from f2_platform.registry.sample import TEMPLATES, WiringSpec
from f2_platform.registry.seed import seed_fleet
from simulator.endpoints import device_time
from simulator.frames import encode_frame
from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.hex import format_hex
from streaming.decoding.topology import WiredDevice
from streaming.decoding.topology_store import RegistryStore
from streaming.kafka import topics
from tests.dagster.conftest import insert_readings

pytestmark = pytest.mark.integration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


@pytest.fixture()
def own_device(migrated) -> Iterator[tuple[str, WiredDevice, str]]:
    """(MAC, the ENV-S1 copy wired at J1 position 1, its template's name) of this test."""
    mac = "e6" + uuid.uuid4().hex[:10]
    env = next(t for t in TEMPLATES if t.name == "ENV-S1")
    template = replace(env, name=f"ENV-S1 twice {mac}")
    controller = next(t for t in TEMPLATES if t.name == "F2 Controller")
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        with reg.transaction():
            seed_fleet(
                reg,
                [(f"Controller {mac}", mac)],
                [WiringSpec(mac, 1, 1, f"Env {mac}", template.name)],
                [template, controller],
            )
        store = RegistryStore(migrated.registry_dsn)
        try:
            _, topology = store.load(mac)
        finally:
            store.close()
        assert topology is not None
        device = topology.wired[(1, 1)]
        try:
            yield mac, device, template.name
        finally:
            reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = %s', (mac,))
            reg.execute('DELETE FROM "VtDevice".devices WHERE deviceid = %s', (device.device_id,))
            reg.execute('DELETE FROM "VtDevice".devicetemplates WHERE name = %s', (template.name,))


def test_reprocessing_twice_in_a_row_changes_rows_once(migrated, ts, code_location, instance, own_device) -> None:
    mac, device, _ = own_device
    temperature = next(dp for dp in device.datapoints if dp.label == "Temperature")
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        reg.execute('UPDATE "VtDevice".datapoints SET decimals = 3 WHERE datapointid = %s', (temperature.datapoint_id,))

    # Within f2.raw's retention; six frames in one hour, stored with the wrong decimals as the sink had them.
    hour = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    producer = Producer(migrated.kafka_config())
    stored_wrong, correct = [], []
    for i in range(6):
        at = hour + timedelta(minutes=10 * i, seconds=5)
        raw_temperature = 2150 + 13 * i
        values = {"Temperature": raw_temperature / 100, "Humidity": 40 + i / 4, "CO2": 600.0 + 9 * i}
        payload = json.dumps(
            {"timestamp": device_time(micros(at)), "data": format_hex(encode_frame(values, device.datapoints))}
        )
        received = at + timedelta(seconds=1)
        producer.produce(
            topics.RAW,
            key=mac.encode(),
            value=payload.encode(),
            timestamp=int(received.timestamp() * 1000),
            headers=[
                (topics.H_MQTT_TOPIC, f"tele/f2-{mac}/sensor-mode/J1/sensor-1".encode()),
                (topics.H_RECEIVED_AT, rfc3339_from_us(micros(received)).encode()),
            ],
        )
        for dp in device.datapoints:
            right = values[dp.label]
            wrong = raw_temperature / 1000 if dp.label == "Temperature" else right
            stored_wrong.append((at, device.device_id, dp.datapoint_id, wrong))
            correct.append((at, device.device_id, dp.datapoint_id, right))
    assert producer.flush(30) == 0
    insert_readings(ts, stored_wrong)

    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        reg.execute('UPDATE "VtDevice".datapoints SET decimals = 2 WHERE datapointid = %s', (temperature.datapoint_id,))
    config = {
        "start": hour.isoformat(),
        "end": (hour + timedelta(hours=1)).isoformat(),
        "device_ids": [device.device_id],
    }
    job = code_location.resolve_job_def("reprocess_job")

    def stored() -> list[tuple[datetime, int, int, float]]:
        rows = ts.execute(
            'SELECT "timestamp", device_id, datapoint_id, value FROM decoded_data WHERE device_id = %s',
            (device.device_id,),
        ).fetchall()
        return sorted((t.astimezone(UTC), d, p, v) for t, d, p, v in rows)

    summaries = []
    contents = []
    for _ in range(2):
        result = job.execute_in_process(
            instance=instance, run_config={"ops": {"reprocess_raw_window": {"config": config}}}
        )
        assert result.success
        summaries.append(result.output_for_node("reprocess_raw_window"))
        contents.append(stored())
    first, second = summaries
    assert (first["records_in_scope"], first["readings_written"], first["rows_changed"]) == (6, 18, 6)
    # The second run re-decodes the same six records to the same readings: nothing changes.
    assert (second["records_in_scope"], second["readings_written"], second["rows_changed"]) == (6, 18, 0)
    assert contents[0] == contents[1] == sorted(correct)
