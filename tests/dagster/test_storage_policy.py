"""Storage policy: retention drops exactly the chunks outside each window and keeps aggregates of dropped
readings; compression reports drift and, on the Apache edition, why it cannot compress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from f2_platform.timeseries.edition import Edition, detect_edition
from f2_platform.timeseries.policy import COMPRESSION, RAW_RETENTION, RETENTION
from tests.dagster.conftest import hour_key, hour_start, insert_readings, materialization_metadata

pytestmark = pytest.mark.integration

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
DEVICE = 880501
CHUNKS = (
    "SELECT format('%%I.%%I', chunk_schema, chunk_name), range_start, range_end "
    "FROM timescaledb_information.chunks WHERE hypertable_schema = 'public' AND hypertable_name = %s"
)


def chunks(conn, table: str) -> dict[str, tuple[datetime, datetime]]:
    return {name: (start, end) for name, start, end in conn.execute(CHUNKS, (table,)).fetchall()}


def test_retention_drops_exactly_the_chunks_outside_the_window(ts, code_location, instance) -> None:
    now = datetime.now(UTC)
    keep = RAW_RETENTION.keep
    ages = {
        "100d": 100 * DAY,
        "95d": 95 * DAY,
        "91d": 91 * DAY,
        "edge": keep - timedelta(minutes=1),
        "89d": 89 * DAY,
        "85d": 85 * DAY,
    }
    insert_readings(ts, [(now - age, DEVICE, 1, float(i)) for i, age in enumerate(ages.values())])
    # Aggregate the hour at 95 days while its readings still exist.
    aggregated_hour = hour_start(now - ages["95d"])
    assert (
        code_location.resolve_job_def("readings_hourly_job")
        .execute_in_process(instance=instance, partition_key=hour_key(aggregated_hour))
        .success
    )
    # Rollup rows around the hourly window (2 years): one outside, one inside. Only the Apache edition's
    # rollups are tables one can write; a continuous aggregate is refreshed from readings only.
    rollup_table = detect_edition(ts) is Edition.APACHE
    hourly_keep = next(p.keep for p in RETENTION if p.hypertable == "readings_hourly")
    old_buckets = {
        "outside": hour_start(now - hourly_keep - 40 * DAY),
        "inside": hour_start(now - hourly_keep + 40 * DAY),
    }
    if rollup_table:
        for bucket in old_buckets.values():
            ts.execute(
                "INSERT INTO readings_hourly VALUES (%s, %s, 1, 1, 1, 1, 1, 1, 1, NULL) ON CONFLICT DO NOTHING",
                (bucket, DEVICE),
            )

    raw_before = chunks(ts, "decoded_data")
    hourly_before = chunks(ts, "readings_hourly") if rollup_table else {}
    result = code_location.resolve_job_def("storage_policy_job").execute_in_process(instance=instance)
    assert result.success
    metadata = materialization_metadata(result, "timeseries_retention")

    cutoff = datetime.fromtimestamp(metadata["decoded_data/cutoff"], tz=UTC)
    assert abs(cutoff - (datetime.now(UTC) - keep)) < timedelta(minutes=2)
    expected_dropped = {name for name, (_, end) in raw_before.items() if end <= cutoff}
    assert {c["chunk"] for c in metadata["decoded_data/dropped"]} == expected_dropped
    assert set(chunks(ts, "decoded_data")) == set(raw_before) - expected_dropped
    assert metadata["decoded_data/chunks_dropped"] == len(expected_dropped) >= 3

    remaining = {
        round(v) for (v,) in ts.execute("SELECT value FROM decoded_data WHERE device_id = %s", (DEVICE,)).fetchall()
    }
    names = list(ages)
    assert remaining == {names.index(n) for n in ("edge", "89d", "85d")}

    rollup = {
        b.astimezone(UTC)
        for (b,) in ts.execute("SELECT bucket FROM readings_hourly WHERE device_id = %s", (DEVICE,)).fetchall()
    }
    # The aggregate of dropped readings stays (inside its own window); only the one outside it went.
    assert rollup == ({aggregated_hour, old_buckets["inside"]} if rollup_table else {aggregated_hour})
    if rollup_table:
        hourly_cutoff = datetime.fromtimestamp(metadata["readings_hourly/cutoff"], tz=UTC)
        expected_hourly = {name for name, (_, end) in hourly_before.items() if end <= hourly_cutoff}
        assert expected_hourly and set(chunks(ts, "readings_hourly")) == set(hourly_before) - expected_hourly

    # Recomputing the hour whose readings are gone keeps the stored aggregate instead of erasing it.
    again = code_location.resolve_job_def("readings_hourly_job").execute_in_process(
        instance=instance, partition_key=hour_key(aggregated_hour)
    )
    assert again.success
    meta = materialization_metadata(again, "readings_hourly")
    assert meta["recomputed"] is False and "dropped by retention" in meta["notes"]
    assert ts.execute(
        "SELECT sample_count FROM readings_hourly WHERE device_id = %s AND bucket = %s",
        (DEVICE, aggregated_hour),
    ).fetchone() == (1,)


def test_compression_reports_drift_and_why_it_is_unavailable(ts, code_location, instance) -> None:
    if detect_edition(ts) is not Edition.APACHE:
        pytest.skip("this database runs the full edition; tests/dagster/test_native_edition.py covers it")
    result = code_location.resolve_job_def("storage_policy_job").execute_in_process(instance=instance)
    assert result.success  # unavailable compression never fails the run
    metadata = materialization_metadata(result, "decoded_data_compression")
    assert metadata["compression_available"] is False
    assert "apache" in metadata["unavailable_reason"]
    assert {d["setting"] for d in metadata["drift"]} == {"compression_enabled", "segment_by", "order_by"}
    assert {d["desired"] for d in metadata["drift"] if d["setting"] == "segment_by"} == {
        ", ".join(COMPRESSION.segment_by)
    }
