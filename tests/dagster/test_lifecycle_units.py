"""Pure parts of the lifecycle, without services: SQL builders, policy checks, windows and sensor planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from f2_platform.defs.aggregates.late_data_sensor import PendingWindow, parse_cursor, plan_requests
from f2_platform.defs.aggregates.maintenance import recomputable_start
from f2_platform.defs.reprocessing.followup_sensor import followup_requests, window_of_run
from f2_platform.defs.reprocessing.window import window_from_config
from f2_platform.partitions import bucket_floor, daily_partitions, hourly_partitions, keys_overlapping
from f2_platform.timeseries import aggregate_sql as q
from f2_platform.timeseries import storage_sql as s
from f2_platform.timeseries.edition import Edition, edition_from_license
from f2_platform.timeseries.policy import COMPRESSION, check_policies

T = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def test_edition_from_license() -> None:
    assert edition_from_license("apache") is Edition.APACHE
    assert edition_from_license(" Timescale ") is Edition.TIMESCALE
    assert edition_from_license(None) is Edition.APACHE
    assert Edition.TIMESCALE.has_native_aggregates and not Edition.APACHE.has_compression


def test_sql_names_the_contract_columns() -> None:
    insert = q.rollup_insert(q.HOURLY).as_string(None)
    assert '"readings_hourly" ("bucket", "device_id", "datapoint_id", "avg_value"' in insert
    assert "time_bucket(INTERVAL '1 hours'" in insert and 'stddev_samp(value ORDER BY "timestamp")' in insert
    assert "INTERVAL '1 days'" in q.rollup_insert(q.DAILY).as_string(None)
    hourly = q.cagg_create(q.HOURLY).as_string(None)
    assert (
        "timescaledb.continuous" in hourly and "materialized_only = false" in hourly and 'FROM "decoded_data"' in hourly
    )
    daily = q.cagg_create(q.DAILY).as_string(None)
    assert 'FROM "readings_hourly"' in daily and "WITH NO DATA" in daily
    assert "refresh_continuous_aggregate('readings_daily'" in q.cagg_refresh(q.DAILY).as_string(None)


def test_declared_policies_are_consistent() -> None:
    assert check_policies() == []
    assert s.enable_compression(COMPRESSION) == (
        'ALTER TABLE "decoded_data" SET (timescaledb.compress, '
        "timescaledb.compress_segmentby = 'device_id', "
        "timescaledb.compress_orderby = '\"timestamp\" DESC')"
    )


def test_compression_drift() -> None:
    assert s.compression_drift(COMPRESSION, True, "device_id", "timestamp DESC NULLS FIRST") == []
    assert s.compression_drift(COMPRESSION, True, '"device_id"', '"timestamp" DESC') == []
    drift = s.compression_drift(COMPRESSION, True, "device_id, datapoint_id", "timestamp")
    assert [(d.setting, d.actual) for d in drift] == [
        ("segment_by", "device_id, datapoint_id"),
        ("order_by", "timestamp"),
    ]
    assert [d.setting for d in s.compression_drift(COMPRESSION, False, None, None)] == [
        "compression_enabled",
        "segment_by",
        "order_by",
    ]


def test_windows_and_partition_keys() -> None:
    assert bucket_floor(T + timedelta(minutes=59), HOUR) == T
    now = T + 3 * DAY
    assert keys_overlapping(hourly_partitions, HOUR, T - timedelta(minutes=30), T + timedelta(minutes=1), now) == [
        "2026-11-20-09:00",
        "2026-11-20-10:00",
    ]
    assert keys_overlapping(daily_partitions, DAY, T, T + HOUR, now) == ["2026-11-20"]
    # Partitions that do not exist yet (the current hour) are never named.
    assert keys_overlapping(hourly_partitions, HOUR, T, T + 5 * HOUR, T + 2 * HOUR + timedelta(minutes=5)) == [
        "2026-11-20-10:00",
        "2026-11-20-11:00",
    ]


def test_recomputable_start_respects_retention() -> None:
    assert recomputable_start(q.HOURLY, T, None) == T
    assert recomputable_start(q.HOURLY, T, T - DAY) == T
    assert recomputable_start(q.HOURLY, T, T + timedelta(minutes=1)) == T + HOUR
    assert recomputable_start(q.DAILY, T - 10 * HOUR, T - 10 * HOUR + DAY) == T - 10 * HOUR + DAY


def test_late_data_plan_requests_only_materialized_windows_once() -> None:
    materialized = dg.AssetPartitionStatus.MATERIALIZED
    pending = [
        PendingWindow("readings_hourly", T, 1, "d1"),
        PendingWindow("readings_hourly", T + HOUR, 1, "d2"),
        PendingWindow("readings_daily", T - 10 * HOUR, 2, "d3"),
    ]
    statuses = {
        "readings_hourly": {
            "2026-11-20-10:00": materialized,
            "2026-11-20-11:00": dg.AssetPartitionStatus.IN_PROGRESS,
        },
        "readings_daily": {"2026-11-20": materialized},
    }
    defs = {"readings_hourly": hourly_partitions, "readings_daily": daily_partitions}
    requests, cursor = plan_requests(pending, {}, statuses, defs)
    assert requests == [("readings_hourly", "2026-11-20-10:00", "d1"), ("readings_daily", "2026-11-20", "d3")]
    assert cursor == {"readings_hourly": {"2026-11-20-10:00": "d1"}, "readings_daily": {"2026-11-20": "d3"}}
    assert plan_requests(pending, cursor, statuses, defs)[0] == []
    newer = [PendingWindow("readings_hourly", T, 2, "d9")]
    assert plan_requests(newer, cursor, statuses, defs) == (
        [("readings_hourly", "2026-11-20-10:00", "d9")],
        {"readings_hourly": {"2026-11-20-10:00": "d9"}},
    )
    assert parse_cursor("not json") == {} and parse_cursor(None) == {}


def test_reprocessing_window_and_followup() -> None:
    window = window_from_config("2026-11-20T10:30:00Z", "2026-11-20T12:00:00+00:00", [11])
    assert (window.start, window.end, window.device_ids) == (
        T + timedelta(minutes=30),
        T + 2 * HOUR,
        frozenset({11}),
    )
    for bad in (
        ("2026-11-20T10:00:00", "2026-11-20T11:00:00Z", [11]),
        ("2026-11-20T11:00:00Z", "2026-11-20T10:00:00Z", [11]),
        ("2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", []),
        ("yesterday", "2026-11-20T11:00:00Z", [1]),
    ):
        with pytest.raises(ValueError):
            window_from_config(*bad)
    run_config = {
        "ops": {
            "reprocess_raw_window": {
                "config": {"start": "2026-11-20T10:30:00Z", "end": "2026-11-20T12:00:00Z", "device_ids": [11]}
            }
        }
    }
    requests = followup_requests("run-1", window_of_run(run_config))
    assert sorted((r.job_name, r.partition_key) for r in requests) == [
        ("readings_daily_job", "2026-11-20"),
        ("readings_hourly_job", "2026-11-20-10:00"),
        ("readings_hourly_job", "2026-11-20-11:00"),
    ]
    assert len({r.run_key for r in requests}) == 3
