"""Fixtures of the Dagster code location's tests: the session stack's settings in the environment (so the
code location's own resources reach it, as in production), a Dagster instance per module, and an
independent Python implementation of the aggregates to compare the database against."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest

from streaming.settings import ConnectionSettings
from tests.dbt_project import prepare_dbt_project


def pytest_configure(config: pytest.Config) -> None:
    # Before the test modules of this folder import the code location, whose dbt assets read the manifest.
    prepare_dbt_project()


@pytest.fixture(scope="module")
def f2_env(migrated: ConnectionSettings, stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The F2_* settings of the session stack in os.environ; `ci`: only the environment, no fallback."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in stack_env.items():
            if name.startswith("F2_"):
                mp.setenv(name, value)
        mp.setenv("F2_DAGSTER_ENVIRONMENT", "ci")
        yield {**stack_env, "F2_DAGSTER_ENVIRONMENT": "ci"}


@pytest.fixture(scope="module")
def instance(f2_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def code_location(f2_env: dict[str, str]) -> dg.Definitions:
    from f2_platform.definitions import defs

    return defs


@pytest.fixture(scope="module")
def code_resources(f2_env: dict[str, str]) -> dict[str, object]:
    """The code location's own resources (they read the environment set by f2_env)."""
    from f2_platform.defs.resources import resources

    return dict(resources())


def sensor_context(
    instance: dg.DagsterInstance, resources: dict[str, object], cursor: str | None
) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)


def evaluate(sensor: dg.SensorDefinition, context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Calls a sensor that returns a SensorResult (as ours do), typed as such."""
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def cursor_of(result: dg.SensorResult) -> dict[str, Any]:
    assert result.cursor is not None
    return json.loads(result.cursor)


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    metadata = event.step_materialization_data.materialization.metadata
    return {k: v.value for k, v in metadata.items()}


@pytest.fixture(scope="module")
def ts(migrated: ConnectionSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        yield conn


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:%M")


def day_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


Reading = tuple[datetime, int, int, float]


def insert_readings(conn: psycopg.Connection, readings: Iterable[Reading]) -> None:
    """As the sink stores readings: a repeated key replaces the value."""
    with conn.cursor() as cur:
        cur.executemany(
            'INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value) VALUES (%s, %s, %s, %s) '
            'ON CONFLICT ("timestamp", device_id, datapoint_id) DO UPDATE SET value = EXCLUDED.value',
            list(readings),
        )


@dataclass(frozen=True)
class Expected:
    avg_value: float
    min_value: float
    max_value: float
    sample_count: int
    first_value: float
    last_value: float
    stddev_value: float | None


def expected_aggregates(readings: Iterable[Reading], width: timedelta) -> dict[tuple[datetime, int, int], Expected]:
    """The aggregates computed in Python from the readings, independently of the SQL under test."""
    groups: dict[tuple[datetime, int, int], list[tuple[datetime, float]]] = {}
    for ts_, device, datapoint, value in readings:
        seconds = int(width.total_seconds())
        epoch = int(ts_.timestamp())
        bucket = datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)
        groups.setdefault((bucket, device, datapoint), []).append((ts_, value))
    result = {}
    for key, points in groups.items():
        points.sort()
        values = [v for _, v in points]
        result[key] = Expected(
            avg_value=statistics.fmean(values),
            min_value=min(values),
            max_value=max(values),
            sample_count=len(values),
            first_value=points[0][1],
            last_value=points[-1][1],
            stddev_value=statistics.stdev(values) if len(values) > 1 else None,
        )
    return result


AGG_COLUMNS = "avg_value, min_value, max_value, sample_count, first_value, last_value, stddev_value"


def stored_aggregates(
    conn: psycopg.Connection, table: str, device_ids: Iterable[int], start: datetime, end: datetime
) -> dict[tuple[datetime, int, int], tuple]:
    assert table in ("readings_hourly", "readings_daily")
    rows = conn.execute(
        f"SELECT bucket, device_id, datapoint_id, {AGG_COLUMNS} FROM {table} "  # noqa: S608 - fixed names
        "WHERE device_id = ANY(%s) AND bucket >= %s AND bucket < %s ORDER BY 1, 2, 3",
        (list(device_ids), start, end),
    ).fetchall()
    return {(r[0].astimezone(UTC), r[1], r[2]): tuple(r[3:]) for r in rows}


def assert_matches(
    stored: dict[tuple[datetime, int, int], tuple], expected: dict[tuple[datetime, int, int], Expected]
) -> None:
    assert set(stored) == set(expected), f"buckets differ: stored {sorted(stored)}, expected {sorted(expected)}"
    for key, exp in expected.items():
        avg, mn, mx, count, first, last, sd = stored[key]
        assert count == exp.sample_count, key
        assert (mn, mx, first, last) == (exp.min_value, exp.max_value, exp.first_value, exp.last_value), key
        assert math.isclose(avg, exp.avg_value, rel_tol=1e-12, abs_tol=1e-12), (key, avg, exp.avg_value)
        if exp.stddev_value is None:
            assert sd is None, key
        else:
            assert sd is not None and math.isclose(sd, exp.stddev_value, rel_tol=1e-9, abs_tol=1e-12), (
                key,
                sd,
            )
