"""The full edition's path: continuous aggregates (daily on hourly, real-time) and compression.

Runs wherever the test database reports timescaledb.license = 'timescale'; the local stack runs the Apache
edition (Debian's TimescaleDB build has no TSL module), so there it is skipped with that reason.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from f2_platform.timeseries.edition import Edition, detect_edition
from tests.dagster.conftest import (
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
DEVICES = (880901, 880902)


@pytest.fixture(scope="module")
def full_edition(ts) -> None:
    edition = detect_edition(ts)
    if edition is not Edition.TIMESCALE:
        pytest.skip(
            f"TimescaleDB here is the {edition.value} edition "
            f"(SHOW timescaledb.license = '{edition.value}'): "
            "continuous aggregates and compression need the community (TSL) build"
        )


def test_continuous_aggregates_refresh_the_window(full_edition, ts, code_location, instance) -> None:
    day = day_start(datetime.now(UTC) - 12 * DAY)
    rng = random.Random(12)
    readings = [
        (
            day + timedelta(hours=h, minutes=m, seconds=rng.randrange(60)),
            device,
            1,
            round(rng.uniform(0, 99), 2),
        )
        for device in DEVICES
        for h in (3, 4)
        for m in range(0, 60, 9)
    ]
    insert_readings(ts, readings)
    for key in (hour_key(day + 3 * HOUR), hour_key(day + 4 * HOUR)):
        assert (
            code_location.resolve_job_def("readings_hourly_job")
            .execute_in_process(instance=instance, partition_key=key)
            .success
        )
    assert (
        code_location.resolve_job_def("readings_daily_job")
        .execute_in_process(instance=instance, partition_key=day_key(day))
        .success
    )
    kinds = dict(
        ts.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name IN ('readings_hourly', 'readings_daily')"
        ).fetchall()
    )
    assert kinds == {"readings_hourly": False, "readings_daily": False}  # real-time views
    assert_matches(
        stored_aggregates(ts, "readings_hourly", DEVICES, day, day + DAY), expected_aggregates(readings, HOUR)
    )
    assert_matches(stored_aggregates(ts, "readings_daily", DEVICES, day, day + DAY), expected_aggregates(readings, DAY))


def test_compression_applies_the_policy(full_edition, ts, code_location, instance) -> None:
    old = datetime.now(UTC) - 30 * DAY
    insert_readings(ts, [(old + timedelta(minutes=i), DEVICES[0], 2, float(i)) for i in range(200)])
    result = code_location.resolve_job_def("storage_policy_job").execute_in_process(instance=instance)
    assert result.success
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("decoded_data_compression")
    ]
    metadata = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
    assert metadata["compression_available"] is True
    assert metadata["drift_after"] == []
    assert metadata["compressed_chunks_total"] >= 1 and metadata["compression_ratio"] > 0
