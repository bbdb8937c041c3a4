"""Aggregates: values equal an independent Python computation, late data is found through the sensor's
cursor and recomputed by an actual run, and backfilling a range twice stores identical rows."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from f2_platform.dagster_home import WORKSPACE, prepare_dagster_home
from f2_platform.defs.aggregates.late_data_sensor import aggregate_late_data_sensor
from tests.dagster.conftest import (
    Reading,
    assert_matches,
    cursor_of,
    day_key,
    day_start,
    evaluate,
    expected_aggregates,
    hour_key,
    insert_readings,
    sensor_context,
    stored_aggregates,
)

pytestmark = pytest.mark.integration

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
DEVICES = (880101, 880102)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def series_readings(rng: random.Random, start: datetime, hours: int, devices: tuple[int, ...]) -> list[Reading]:
    readings: list[Reading] = []
    for device in devices:
        for datapoint in (1, 2):
            t = start + timedelta(seconds=rng.randrange(0, 300))
            while t < start + hours * HOUR:
                readings.append((t, device, datapoint, round(rng.uniform(-50, 150), 2)))
                t += timedelta(seconds=rng.randrange(240, 600))
    return readings


def run_job(
    defs: dg.Definitions, instance: dg.DagsterInstance, job: str, **kwargs: object
) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, **kwargs)  # type: ignore[arg-type]
    assert result.success
    return result


@pytest.fixture(scope="module")
def seeded_day(ts, code_location, instance) -> dict[str, object]:
    """Three hours of readings on one day 20 days ago, aggregated once: hourly as one range run, daily."""
    day = day_start(datetime.now(UTC) - 20 * DAY)
    first_hour = day + 9 * HOUR
    readings = series_readings(random.Random(20), first_hour, 3, DEVICES)
    # A series with one sample in its hour: the sample stddev is NULL there.
    readings.append((first_hour + HOUR + timedelta(minutes=13), DEVICES[1], 3, 42.5))
    insert_readings(ts, readings)
    run_job(
        code_location,
        instance,
        "readings_hourly_job",
        tags=dict(zip(RANGE_TAGS, (hour_key(first_hour), hour_key(first_hour + 2 * HOUR)), strict=True)),
    )
    run_job(code_location, instance, "readings_daily_job", partition_key=day_key(day))
    return {"day": day, "first_hour": first_hour, "readings": readings}


def test_aggregates_equal_values_computed_independently(ts, seeded_day) -> None:
    day, first_hour, readings = seeded_day["day"], seeded_day["first_hour"], seeded_day["readings"]
    hourly = stored_aggregates(ts, "readings_hourly", DEVICES, first_hour, first_hour + 3 * HOUR)
    assert_matches(hourly, expected_aggregates(readings, HOUR))
    assert any(row[6] is None for row in hourly.values()), "the one-sample series has a NULL stddev"
    assert_matches(stored_aggregates(ts, "readings_daily", DEVICES, day, day + DAY), expected_aggregates(readings, DAY))


def test_late_data_is_requested_through_the_cursor_and_recomputed(
    ts, seeded_day, code_location, code_resources, instance
) -> None:
    day, first_hour, readings = seeded_day["day"], seeded_day["first_hour"], list(seeded_day["readings"])
    result = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, None))
    assert result.run_requests == [] and cursor_of(result) == {}

    # A controller back online flushes readings of the second hour, after that hour was aggregated.
    late_hour = first_hour + HOUR
    late = [(late_hour + timedelta(minutes=m, seconds=7), DEVICES[0], 1, 1000.0 + m) for m in (3, 41)]
    insert_readings(ts, late)
    readings += late

    result = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, result.cursor))
    assert result.run_requests is not None
    requested = sorted((r.job_name, r.partition_key) for r in result.run_requests)
    assert requested == [("readings_daily_job", day_key(day)), ("readings_hourly_job", hour_key(late_hour))]
    cursor = cursor_of(result)
    assert set(cursor) == {"readings_hourly", "readings_daily"}
    assert list(cursor["readings_hourly"]) == [hour_key(late_hour)]

    # Evaluated again with its cursor, the sensor does not ask twice for the same late writes.
    again = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, result.cursor))
    assert again.run_requests == [] and cursor_of(again) == cursor

    for request in result.run_requests:
        assert request.job_name is not None
        run_job(code_location, instance, request.job_name, partition_key=request.partition_key, tags=request.tags)
    assert_matches(
        stored_aggregates(ts, "readings_hourly", DEVICES, first_hour, first_hour + 3 * HOUR),
        expected_aggregates(readings, HOUR),
    )
    assert_matches(stored_aggregates(ts, "readings_daily", DEVICES, day, day + DAY), expected_aggregates(readings, DAY))

    done = evaluate(aggregate_late_data_sensor, sensor_context(instance, code_resources, again.cursor))
    assert done.run_requests == [] and cursor_of(done) == {}


def test_backfilling_a_range_twice_gives_identical_rows(ts, f2_env, code_location, instance, tmp_path: Path) -> None:
    devices = (880201, 880202)
    first_hour = day_start(datetime.now(UTC) - 25 * DAY) + 5 * HOUR
    readings = series_readings(random.Random(25), first_hour, 6, devices)
    insert_readings(ts, readings)
    start_key, end_key = hour_key(first_hour), hour_key(first_hour + 5 * HOUR)

    # First backfill from the CLI, in a Dagster instance of its own.
    env = {**f2_env, "DAGSTER_HOME": str(prepare_dagster_home(tmp_path))}
    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "f2_platform.definitions",
            "-a",
            "defs",
            "--select",
            "readings_hourly",
            "--config-json",
            '{"execution": {"config": {"in_process": {}}}}',
            "--partition-range",
            f"{start_key}...{end_key}",
        ],
        env=env,
        cwd=WORKSPACE.parent,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    first = stored_aggregates(ts, "readings_hourly", devices, first_hour, first_hour + 6 * HOUR)
    assert_matches(first, expected_aggregates(readings, HOUR))

    # Second backfill of the same range, as the UI launches it (one run for the range).
    run_job(
        code_location,
        instance,
        "readings_hourly_job",
        tags=dict(zip(RANGE_TAGS, (start_key, end_key), strict=True)),
    )
    second = stored_aggregates(ts, "readings_hourly", devices, first_hour, first_hour + 6 * HOUR)
    assert second == first  # bit-identical, floats included
