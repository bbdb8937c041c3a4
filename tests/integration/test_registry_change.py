"""A registry change reaches the processors' caches within seconds."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import psycopg
import pytest

from streaming.settings import ConnectionSettings
from tests.realtime import publish, wait_for

pytestmark = pytest.mark.integration

TOPIC = "tele/f2-aabbccddee01/sensor-mode/J1/sensor-1"
FRAME = "01 03 06 09 30 11 9E 02 64 05 B1"  # Temperature raw 0x0930 = 2352, Humidity 4510, CO2 612


def _temperature_ids(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            'SELECT d.deviceid, dp.datapointid FROM "VtDevice".devices d JOIN "VtDevice".datapoints dp '
            "ON dp.devicetemplateid = d.devicetemplateid WHERE d.devicename = 'Living Room Env' "
            "AND dp.label = 'Temperature'"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _send_and_read(conn: ConnectionSettings, device_id: int, datapoint_id: int) -> float:
    ts = datetime.now(UTC).replace(tzinfo=None)
    payload = {"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S.%f"), "data": FRAME}
    publish(conn, [(TOPIC, json.dumps(payload).encode())])
    found: list[float] = []

    def stored() -> bool:
        with psycopg.connect(conn.timeseries_dsn) as db:
            row = db.execute(
                'SELECT value FROM decoded_data WHERE "timestamp" = %s AND device_id = %s AND datapoint_id = %s',
                (ts.replace(tzinfo=UTC), device_id, datapoint_id),
            ).fetchone()
        if row:
            found.append(float(row[0]))
        return bool(row)

    wait_for(stored, 30, what="the reading")
    return found[-1]


def test_decimals_change_applies_to_frames_received_5_s_later(migrated: ConnectionSettings, pipeline) -> None:
    device_id, datapoint_id = _temperature_ids(migrated.registry_dsn)
    # Warm every cache layer with the current definition first.
    assert abs(_send_and_read(migrated, device_id, datapoint_id) - 23.52) <= 1e-9
    try:
        with psycopg.connect(migrated.registry_dsn) as db:
            db.execute('UPDATE "VtDevice".datapoints SET decimals = 1 WHERE datapointid = %s', (datapoint_id,))
        time.sleep(5)
        assert abs(_send_and_read(migrated, device_id, datapoint_id) - 235.2) <= 1e-9
    finally:
        with psycopg.connect(migrated.registry_dsn) as db:
            db.execute('UPDATE "VtDevice".datapoints SET decimals = 2 WHERE datapointid = %s', (datapoint_id,))
    time.sleep(5)
    assert abs(_send_and_read(migrated, device_id, datapoint_id) - 23.52) <= 1e-9
