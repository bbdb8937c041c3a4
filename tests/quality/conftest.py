"""Fixtures of the data-quality tests: the session stack's settings in the environment, a local webhook
receiver, and the seeded day (our own controller and devices in the registry, readings with known defects in
decoded_data, dead letters in Kafka). The registry rows and latest values go again at the end of the session; the
readings and their aggregates stay with the session's database (see delete_latest_values)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer

from f2_platform.registry.sample import TEMPLATES, WiringSpec
from f2_platform.registry.seed import seed_fleet
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.dbt_project import prepare_dbt_project
from tests.quality import seed as s


def pytest_configure(config: pytest.Config) -> None:
    # Before the test modules of this folder import the code location, whose dbt assets read the manifest.
    prepare_dbt_project()


class Receiver:
    """A real HTTP endpoint on a free loopback port that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with received._lock:
                    received.bodies.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/alerts"

    def clear(self) -> None:
        with self._lock:
            self.bodies.clear()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self.bodies if b.get("kind") == kind]


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture(scope="session")
def quality_env(
    migrated: ConnectionSettings,
    stack_env: dict[str, str],
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The F2_* settings of the session stack in os.environ (`ci`: only the environment), alerts to the
    local receiver, reports to a temporary folder."""
    env = {name: value for name, value in stack_env.items() if name.startswith("F2_")}
    env.update(
        {
            "F2_DAGSTER_ENVIRONMENT": "ci",
            "F2_ALERT_WEBHOOK_URL": receiver.url,
            "F2_ALERT_ATTEMPTS": "1",
            "F2_QUALITY_REPORT_DIR": str(tmp_path_factory.mktemp("dq-reports")),
            "F2_DBT_SCHEMA": "f2_analytics_test",
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield env


def register(conn: psycopg.Connection, mac: str, name: str, wiring: dict[str, tuple[int, int, str]]) -> dict[str, int]:
    """Our controller with `wiring` (device name -> (connector, position, template)); device name -> id."""
    templates = [s.TEMPLATE, *(t for t in TEMPLATES if t.name in ("DS-2", "F2 Controller"))]
    specs = [
        WiringSpec(mac, connector, position, device, template)
        for device, (connector, position, template) in wiring.items()
    ]
    ids = seed_fleet(conn, [(name, mac)], specs, templates)
    return {w.device: ids[(w.mac, w.connector, w.position)] for w in specs}


def unregister(conn: psycopg.Connection, macs: list[str], device_ids: list[int]) -> None:
    conn.execute('DELETE FROM "VtDevice".devices WHERE macaddress = ANY(%s)', (macs,))  # cascades to its pins
    conn.execute('DELETE FROM "VtDevice".devices WHERE deviceid = ANY(%s)', (device_ids,))
    conn.execute('DELETE FROM "VtDevice".devicetemplates WHERE name = %s', (s.TEMPLATE.name,))


def datapoint_ids(conn: psycopg.Connection, template: str) -> dict[str, int]:
    rows = conn.execute(
        'SELECT p.label, p.datapointid FROM "VtDevice".datapoints p JOIN "VtDevice".devicetemplates t '
        "ON t.devicetemplateid = p.devicetemplateid WHERE t.name = %s",
        (template,),
    ).fetchall()
    return {str(label): int(i) for label, i in rows}


def copy_readings(conn: psycopg.Connection, readings: list[s.Reading]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy('COPY decoded_data ("timestamp", device_id, datapoint_id, value) FROM STDIN') as copy,
    ):
        for row in readings:
            copy.write_row(row)


def delete_latest_values(conn: psycopg.Connection, device_ids: list[int]) -> None:
    """The devices' rows in latest_values, a plain table. Their readings and aggregates stay: the device ids are
    this session's own (serials of its registry, in its own database), and on the full edition decoded_data's
    compressed chunks and the continuous aggregates readings_hourly and readings_daily refuse DELETE."""
    conn.execute("DELETE FROM latest_values WHERE device_id = ANY(%s)", (device_ids,))


def forget_window(dsn: str, device_ids: list[int], start: datetime, end: datetime) -> None:
    """Removes these devices' readings in [start, end) and brings both aggregates of the window back to what
    the remaining readings give, as a partition run does (rollups recomputed on the Apache edition,
    refresh_continuous_aggregate on the full one: a continuous aggregate refuses DELETE). The window must be
    younger than the compression policy's age, so that no chunk it touches is compressed."""
    from f2_platform.defs.aggregates.maintenance import maintain_window
    from f2_platform.defs.resources import TimescaleResource
    from f2_platform.partitions import bucket_floor
    from f2_platform.timeseries.aggregate_sql import AGGREGATES
    from f2_platform.timeseries.policy import COMPRESSION

    assert start > datetime.now(UTC) - COMPRESSION.compress_after, f"{start} may lie in a compressed chunk"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            'DELETE FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" >= %s AND "timestamp" < %s',
            (device_ids, start, end),
        )
    timescale = TimescaleResource(dsn=dsn)
    for spec in AGGREGATES:
        last = bucket_floor(end - timedelta(microseconds=1), spec.bucket) + spec.bucket
        maintain_window(timescale, spec, bucket_floor(start, spec.bucket), last)


def produce_dead_letters(connections: ConnectionSettings, letters: list[tuple[datetime, str, str]]) -> None:
    producer = Producer(connections.kafka_config())
    for at, reason, mac in letters:
        mqtt_topic = f"tele/f2-{mac}/sensor-mode/J1/sensor-1"
        producer.produce(
            topics.DEADLETTER,
            key=mac.encode(),
            value=b'{"timestamp": "x", "data": "zz"}',
            timestamp=int(at.timestamp() * 1000),
            headers=[
                (topics.H_REASON, reason.encode()),
                (topics.H_DETAIL, b"seeded by tests/quality"),
                (topics.H_SOURCE_TOPIC, topics.RAW.encode()),
                (topics.H_SOURCE_PARTITION, b"0"),
                (topics.H_SOURCE_OFFSET, b"0"),
                (topics.H_MQTT_TOPIC, mqtt_topic.encode()),
            ],
        )
    assert producer.flush(30) == 0


@pytest.fixture(scope="session")
def seeded(migrated: ConnectionSettings) -> Iterator[s.SeededDay]:
    """Three days ago (inside the dead-letter topic's retention), our own controller and devices."""
    now = datetime.now(UTC)
    day = (now - timedelta(days=3)).date()
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        with reg.transaction():
            devices = register(reg, s.MAC, "DQ Controller", s.WIRING)
        day_data = s.SeededDay(day, devices, datapoint_ids(reg, s.TEMPLATE.name), datapoint_ids(reg, "DS-2"), now)
    day_data.build()
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        copy_readings(ts, day_data.readings + day_data.future)
    produce_dead_letters(migrated, day_data.dead_letters)
    try:
        yield day_data
    finally:
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
            delete_latest_values(ts, day_data.device_ids)
            # Windows our readings marked as late: nobody else writes into this day.
            ts.execute(
                "DELETE FROM aggregate_invalidations WHERE bucket >= %s AND bucket < %s",
                (day_data.start - timedelta(days=1), day_data.end),
            )
        with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
            unregister(reg, [s.MAC], day_data.device_ids)


# --- Dagster ------------------------------------------------------------------------------------------

HOUR_FORMAT = "%Y-%m-%d-%H:%M"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture(scope="session")
def instance(quality_env: dict[str, str]) -> Iterator[Any]:
    import dagster as dg

    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="session")
def code_location(quality_env: dict[str, str]) -> Any:
    from f2_platform.definitions import defs

    return defs


def hourly_range_tags(start: datetime, hours: int) -> dict[str, str]:
    last = start + timedelta(hours=hours - 1)
    return dict(zip(RANGE_TAGS, (start.strftime(HOUR_FORMAT), last.strftime(HOUR_FORMAT)), strict=True))


@pytest.fixture(scope="session")
def aggregated(seeded: s.SeededDay, code_location: Any, instance: Any, receiver: Receiver) -> dict[str, Any]:
    """The seeded day's aggregates, materialized by the aggregate jobs (one hourly range run and the daily
    run); their checks run with them. Blocking checks fail on this day, so the runs do not succeed."""
    receiver.clear()
    hourly = code_location.resolve_job_def("readings_hourly_job").execute_in_process(
        instance=instance, tags=hourly_range_tags(seeded.start, 24), raise_on_error=False
    )
    daily = code_location.resolve_job_def("readings_daily_job").execute_in_process(
        instance=instance, partition_key=seeded.day.isoformat(), raise_on_error=False
    )
    return {"hourly": hourly, "daily": daily, "alerts": list(receiver.bodies)}
