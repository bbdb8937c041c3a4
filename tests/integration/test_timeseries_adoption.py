"""Adopting the reference deployment's stored readings (`f2 db migrate` on its time-series database), on the
session stack's real PostgreSQL + TimescaleDB (Apache edition).

The "deployment" is built with what that edition allows: a plain `decoded_data` (not a hypertable, no primary
key, `value` nullable) holding readings, some without a value, and a PostgreSQL materialized view
`decoded_hourly_stats` standing for the deployment's continuous aggregate (a continuous aggregate needs the full
edition, and a hypertable underneath). Every expectation is computed here, from the rows this test wrote or from
dumps taken with plain SQL, never by the code under test.
"""

from __future__ import annotations

import math
import random
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from f2_platform.db.timeseries_adoption import MOVE_DUPLICATES_SQL
from f2_platform.defs.aggregates.maintenance import maintain_window
from f2_platform.defs.resources import TimescaleResource
from f2_platform.quality.evaluation import WindowEvaluation
from f2_platform.quality.fleet import DATAPOINT_COLUMNS, DEVICE_COLUMNS, Fleet
from f2_platform.quality.window import CheckWindow
from f2_platform.timeseries import aggregate_sql as q
from streaming.settings import ConnectionSettings

pytestmark = pytest.mark.integration

F2 = str(Path(sys.executable).parent / "f2")
SQL = Path(__file__).resolve().parents[2] / "sql"
Row = tuple[datetime, int, int, float | None]

DEPLOYMENT_DDL = """
CREATE TABLE decoded_data (
    "timestamp" timestamptz NOT NULL,
    device_id integer NOT NULL,
    datapoint_id integer NOT NULL,
    value double precision
)
"""
# The deployment's hourly aggregate as far as the Apache edition allows: a materialized view over the table.
DEPLOYMENT_AGGREGATE = """
CREATE MATERIALIZED VIEW decoded_hourly_stats AS
SELECT date_trunc('hour', "timestamp") AS hour, device_id, datapoint_id,
       avg(value) AS mean, count(value) AS samples, count(*) AS readings
FROM decoded_data GROUP BY 1, 2, 3
"""
DUMP = 'COPY (SELECT "timestamp", device_id, datapoint_id, value FROM decoded_data ORDER BY 1, 2, 3, 4) TO STDOUT'
AGGREGATE_DUMP = "COPY (SELECT * FROM decoded_hourly_stats ORDER BY 1, 2, 3) TO STDOUT"
START = datetime(2026, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)
# One series-hour where every reading lacks a value: no aggregate row may come of it.
ALL_NULL = (2, 21, START + 5 * HOUR)


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@pytest.fixture()
def databases(connections: ConnectionSettings) -> Iterator[tuple[str, str]]:
    """Two new databases on the session stack, (time series, registry), dropped afterwards."""
    names = [f"f2_adopt_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = with_database(connections.timeseries_dsn, "postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(connections.timeseries_dsn, names[0]), with_database(connections.timeseries_dsn, names[1])
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def deployment_rows() -> list[Row]:
    """Two days of readings every 10 minutes for 3 devices x 2 datapoints; about 8 % without a value."""
    rng = random.Random(7)
    rows: list[Row] = []
    for step in range(2 * 24 * 6):
        at = START + timedelta(minutes=10 * step)
        for device in (1, 2, 3):
            for datapoint in (device * 10, device * 10 + 1):
                missing = rng.random() < 0.08 or (device, datapoint, at.replace(minute=0)) == ALL_NULL
                rows.append((at, device, datapoint, None if missing else round(rng.uniform(-50, 150), 3)))
    return rows


def build_deployment(dsn: str, rows: list[Row], ddl: str = DEPLOYMENT_DDL, aggregate: bool = True) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl)
        with (
            conn.cursor() as cur,
            cur.copy('COPY decoded_data ("timestamp", device_id, datapoint_id, value) FROM STDIN') as copy,
        ):
            for row in rows:
                copy.write_row(row)
        if aggregate:
            conn.execute(DEPLOYMENT_AGGREGATE)


def dump(dsn: str, statement: str = DUMP) -> bytes:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        out = bytearray()
        with cur.copy(statement) as copy:
            for chunk in copy:
                out += chunk
        return bytes(out)


def f2_migrate(stack_env: dict[str, str], timeseries: str, registry: str, *args: str) -> subprocess.CompletedProcess:
    env = {**stack_env, "F2_TIMESERIES_DSN": timeseries, "F2_REGISTRY_DSN": registry}
    return subprocess.run(
        [F2, "db", "migrate", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def scalar(dsn: str, query: str, params: tuple = ()) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def is_hypertable(dsn: str) -> bool:
    if not scalar(dsn, "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"):
        return False
    return bool(
        scalar(dsn, "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'decoded_data'")
    )


def key_columns(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid "
            "AND a.attnum = ANY(x.indkey) WHERE x.indrelid = 'decoded_data'::regclass AND x.indisprimary"
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_a_plain_decoded_data_becomes_a_hypertable_and_keeps_every_row(
    databases: tuple[str, str], stack_env: dict[str, str]
) -> None:
    ts, registry = databases
    rows = deployment_rows()
    nulls = sum(1 for r in rows if r[3] is None)
    assert 0 < nulls < len(rows)
    build_deployment(ts, rows)
    before, aggregate_before = dump(ts), dump(ts, AGGREGATE_DUMP)
    assert before.count(b"\n") == len(rows) and before.count(b"\\N") == nulls

    result = f2_migrate(stack_env, ts, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"converted into a hypertable with its {len(rows)} row(s)" in out, out
    assert f"{nulls} reading(s) without a value (NULL) kept" in out, out
    assert "read by materialized view decoded_hourly_stats: left as it is" in out, out
    assert "added as the primary key decoded_data_pkey" in out, out

    # Every row kept, byte for byte, and now in the hypertable's chunks.
    assert dump(ts) == before
    assert is_hypertable(ts)
    assert scalar(ts, "SELECT count(*) FROM ONLY decoded_data") == 0
    assert scalar(ts, "SELECT count(*) FROM decoded_data WHERE value IS NULL") == nulls
    assert key_columns(ts) == {"timestamp", "device_id", "datapoint_id"}
    assert (
        scalar(
            ts, "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'decoded_data'::regclass AND attname = 'value'"
        )
        is False
    )
    # Every time-series migration is applied.
    applied = scalar(ts, "SELECT count(*) FROM f2_schema_migrations WHERE target = 'timeseries'")
    assert applied == len(list((SQL / "timeseries").glob("*.sql")))

    # The deployment's aggregate is untouched, and still refreshes from the same rows.
    assert scalar(ts, "SELECT relkind::text FROM pg_class WHERE relname = 'decoded_hourly_stats'") == "m"
    assert dump(ts, AGGREGATE_DUMP) == aggregate_before
    with psycopg.connect(ts, autocommit=True) as conn:
        conn.execute("REFRESH MATERIALIZED VIEW decoded_hourly_stats")
    assert dump(ts, AGGREGATE_DUMP) == aggregate_before

    # latest_values: the newest reading with a value of each series.
    newest: dict[tuple[int, int], tuple[datetime, float]] = {}
    for at, device, datapoint, value in rows:
        if value is not None and ((device, datapoint) not in newest or at > newest[(device, datapoint)][0]):
            newest[(device, datapoint)] = (at, value)
    with psycopg.connect(ts) as conn:
        latest = {
            (int(d), int(p)): (t, float(v))
            for d, p, t, v in conn.execute('SELECT device_id, datapoint_id, "timestamp", value FROM latest_values')
        }
    assert latest == newest

    # Migrating again changes nothing.
    again = f2_migrate(stack_env, ts, registry)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to apply" in again.stdout and "converted" not in again.stdout
    assert dump(ts) == before and dump(ts, AGGREGATE_DUMP) == aggregate_before

    check_aggregates_leave_missing_values_out(ts, rows)
    check_missing_values_are_reported(ts, rows)

    # The sink's upsert finds its key: the same reading again replaces the value, no second row.
    at, device, datapoint, _ = rows[0]
    with psycopg.connect(ts, autocommit=True) as conn:
        conn.execute(
            'INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value) VALUES (%s, %s, %s, 1.5) '
            'ON CONFLICT ("timestamp", device_id, datapoint_id) DO UPDATE SET value = EXCLUDED.value',
            (at, device, datapoint),
        )
    assert (
        scalar(
            ts,
            'SELECT count(*) FROM decoded_data WHERE "timestamp" = %s AND device_id = %s AND datapoint_id = %s',
            (at, device, datapoint),
        )
        == 1
    )
    assert scalar(ts, "SELECT count(*) FROM decoded_data") == len(rows)


def check_aggregates_leave_missing_values_out(ts: str, rows: list[Row]) -> None:
    """The platform's hourly rollup over the adopted rows, against the values computed here."""
    window = {"start": START, "end": START + 24 * HOUR}
    # As a partition run computes it, on either edition (a rollup here, a continuous aggregate on the full one).
    maintain_window(TimescaleResource(dsn=ts), q.HOURLY, window["start"], window["end"])
    with psycopg.connect(ts, autocommit=True) as conn:
        got = {
            (r[0], int(r[1]), int(r[2])): r[3:]
            for r in conn.execute(
                "SELECT bucket, device_id, datapoint_id, avg_value, min_value, max_value, sample_count, "
                "first_value, last_value, stddev_value FROM readings_hourly WHERE bucket >= %(start)s "
                "AND bucket < %(end)s",
                window,
            )
        }
    series: dict[tuple[datetime, int, int], list[tuple[datetime, float]]] = {}
    for at, device, datapoint, value in rows:
        if window["start"] <= at < window["end"] and value is not None:
            series.setdefault((at.replace(minute=0), device, datapoint), []).append((at, value))
    assert (ALL_NULL[2], ALL_NULL[0], ALL_NULL[1]) not in got, "an hour without any value has no aggregate row"
    assert got.keys() == series.keys()
    for key, samples in series.items():
        values = [v for _, v in sorted(samples)]
        avg, low, high, count, first, last, stddev = got[key]
        assert count == len(values) and first == values[0] and last == values[-1]
        assert (low, high) == (min(values), max(values))
        assert math.isclose(avg, statistics.fmean(values), rel_tol=1e-12, abs_tol=1e-9)
        if len(values) > 1:
            assert math.isclose(stddev, statistics.stdev(values), rel_tol=1e-9, abs_tol=1e-9)
        else:
            assert stddev is None


def check_missing_values_are_reported(ts: str, rows: list[Row]) -> None:
    """The data-quality check missing_values finds every reading without a value of a day; the readings check
    (ERROR) does not take them for wrong values."""
    day = START.date()
    window = CheckWindow.of_day(day, datetime.now(UTC))
    no_fleet = Fleet(pd.DataFrame(columns=DEVICE_COLUMNS), pd.DataFrame(columns=DATAPOINT_COLUMNS))
    evaluation = WindowEvaluation(TimescaleResource(dsn=ts), no_fleet, window)
    outcome = evaluation.missing_values()
    expected: dict[tuple[int, int, datetime], int] = {}
    for at, device, datapoint, value in rows:
        if value is None and window.start <= at < window.end:
            key = (device, datapoint, at.replace(minute=0))
            expected[key] = expected.get(key, 0) + 1
    assert not outcome.passed and outcome.severity.value == "WARN"
    assert outcome.failure_count == sum(expected.values())
    found = {
        (int(r.device_id), int(r.datapoint_id), r.bucket.to_pydatetime()): int(r.missing_count)
        for r in outcome.failures.itertuples()
    }
    assert found == expected
    assert evaluation.readings(full=False).passed


def test_duplicate_keys_are_refused_until_moved_aside_and_nothing_is_lost(
    databases: tuple[str, str], stack_env: dict[str, str]
) -> None:
    ts, registry = databases
    rows = deployment_rows()[:300]
    assert all(rows[i][3] is not None for i in (10, 20, 30))
    copies = [rows[10], rows[10], (rows[20][0], rows[20][1], rows[20][2], None), (*rows[30][:3], 9.75)]
    build_deployment(ts, rows + copies, aggregate=False)
    before = dump(ts)

    refused = f2_migrate(stack_env, ts, registry)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert "3 key(s) (timestamp, device_id, datapoint_id) stored more than once" in message, message
    assert "decoded_data_duplicates" in message and "Nothing was changed" in message
    assert dump(ts) == before and not is_hypertable(ts)

    # The operator's fix from the message keeps every row: one copy per key stays, the others move aside.
    with psycopg.connect(ts, autocommit=True) as conn:
        conn.execute(MOVE_DUPLICATES_SQL)
    kept, aside = dump(ts), dump(ts, "COPY (SELECT * FROM decoded_data_duplicates) TO STDOUT")
    assert sorted((kept + aside).splitlines()) == sorted(before.splitlines())
    assert aside.count(b"\n") == 4  # rows[10] twice more, rows[20] and rows[30] once more each
    at, device, datapoint, value = rows[20]
    with psycopg.connect(ts) as conn:
        kept_values = conn.execute(
            'SELECT value FROM decoded_data WHERE "timestamp" = %s AND device_id = %s AND datapoint_id = %s',
            (at, device, datapoint),
        ).fetchall()
    assert kept_values == [(value,)], "of a reading and its copy without a value, the reading stays"

    result = f2_migrate(stack_env, ts, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    assert is_hypertable(ts) and dump(ts) == kept


def test_readings_without_a_key_are_refused_and_left_alone(
    databases: tuple[str, str], stack_env: dict[str, str]
) -> None:
    ts, registry = databases
    rows = deployment_rows()[:50]
    loose_ddl = DEPLOYMENT_DDL.replace("device_id integer NOT NULL", "device_id integer")
    build_deployment(ts, [*rows, (START, None, 10, 1.0)], ddl=loose_ddl, aggregate=False)  # type: ignore[list-item]
    before = dump(ts)
    refused = f2_migrate(stack_env, ts, registry)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert '1 row(s) with "device_id" NULL' in message and 'WHERE "device_id" IS NULL' in message, message
    assert dump(ts) == before and not is_hypertable(ts)


def test_the_deployment_aggregate_is_replaced_only_when_asked(
    databases: tuple[str, str], stack_env: dict[str, str]
) -> None:
    ts, registry = databases
    build_deployment(ts, deployment_rows()[:600])
    first = f2_migrate(stack_env, ts, registry)
    assert first.returncode == 0, first.stdout + first.stderr
    assert scalar(ts, "SELECT relkind::text FROM pg_class WHERE relname = 'decoded_hourly_stats'") == "m"
    # The platform's hourly aggregate of the window, as a partition run computes it (on the full edition its
    # first run creates readings_hourly, which the replacement's view reads).
    window = {"start": START, "end": START + 4 * HOUR}
    maintain_window(TimescaleResource(dsn=ts), q.HOURLY, window["start"], window["end"])

    replaced = f2_migrate(stack_env, ts, registry, "--replace-deployment-aggregate")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "decoded_hourly_stats: the deployment's materialized view was dropped and replaced, as asked" in (
        replaced.stdout
    )
    assert scalar(ts, "SELECT relkind::text FROM pg_class WHERE relname = 'decoded_hourly_stats'") == "v"
    with psycopg.connect(ts, autocommit=True) as conn:
        through_view = conn.execute(
            "SELECT * FROM decoded_hourly_stats WHERE bucket >= %(start)s AND bucket < %(end)s ORDER BY 1, 2, 3",
            window,
        ).fetchall()
        direct = conn.execute(
            "SELECT * FROM readings_hourly WHERE bucket >= %(start)s AND bucket < %(end)s ORDER BY 1, 2, 3", window
        ).fetchall()
    assert through_view == direct and len(direct) > 0

    again = f2_migrate(stack_env, ts, registry, "--replace-deployment-aggregate")
    assert again.returncode == 0 and "decoded_hourly_stats: nothing to replace" in again.stdout


def test_a_keyed_hypertable_is_used_as_it_is(databases: tuple[str, str], stack_env: dict[str, str]) -> None:
    ts, registry = databases
    rows = [r for r in deployment_rows()[:400] if r[3] is not None]
    with psycopg.connect(ts, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    ddl = DEPLOYMENT_DDL.replace(
        "value double precision\n)", 'value double precision,\n PRIMARY KEY ("timestamp", device_id, datapoint_id))'
    )
    ddl += ";SELECT create_hypertable('decoded_data', by_range('timestamp', INTERVAL '7 days'))"
    build_deployment(ts, [], ddl=ddl, aggregate=False)
    with (
        psycopg.connect(ts, autocommit=True) as conn,
        conn.cursor() as cur,
        cur.copy('COPY decoded_data ("timestamp", device_id, datapoint_id, value) FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row(row)
    before = dump(ts)
    result = f2_migrate(stack_env, ts, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "converted" not in result.stdout and "added as" not in result.stdout
    assert dump(ts) == before
    interval = scalar(
        ts,
        "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'decoded_data'",
    )
    assert interval == timedelta(days=7)
