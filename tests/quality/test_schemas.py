"""The schemas and pure pieces on hand-made frames: each rule flags exactly the rows that break it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from f2_platform.defs.analytics.project import profile_environment
from f2_platform.defs.quality.silence_sensor import parse_cursor, plan
from f2_platform.quality import checks as c
from f2_platform.quality.deadletters import controller_of
from f2_platform.quality.settings import DbtSettings, QualitySettings
from f2_platform.quality.window import CheckWindow
from streaming.kafka.records import Headers

NOW = datetime(2025, 6, 2, 0, 30, tzinfo=UTC)
T0 = datetime(2025, 6, 1, tzinfo=UTC)
SETTINGS = QualitySettings()


def frame(rows: list[dict], times: tuple[str, ...] = ()) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for column in times:
        df[column] = pd.to_datetime(df[column], utc=True).astype("datetime64[us, UTC]")
    return df


def test_missing_values_counts_every_reading_without_a_value() -> None:
    rows = frame(
        [
            {
                "device_id": 1,
                "datapoint_id": 2,
                "bucket": T0,
                "missing_count": 3,
                "first_missing": T0,
                "last_missing": T0,
            },
            {
                "device_id": 1,
                "datapoint_id": 3,
                "bucket": T0,
                "missing_count": 1,
                "first_missing": T0,
                "last_missing": T0,
            },
        ],
        times=("bucket", "first_missing", "last_missing"),
    )
    outcome = c.check_missing_values(rows)
    assert outcome.severity is c.Severity.WARN and not outcome.passed
    assert outcome.failure_count == 4 and len(outcome.failures) == 2
    assert set(outcome.failures[c.FAILED_CHECKS]) == {"reading_has_a_value"}
    empty = c.check_missing_values(rows.head(0))
    assert empty.passed and empty.failure_count == 0


def test_readings_schema_flags_future_non_finite_and_duplicates() -> None:
    rows = frame(
        [
            {"timestamp": T0, "device_id": 1, "datapoint_id": 2, "value": 1.0},
            {"timestamp": T0, "device_id": 1, "datapoint_id": 2, "value": 2.0},  # duplicate key
            {"timestamp": NOW + timedelta(seconds=299), "device_id": 1, "datapoint_id": 3, "value": 1.0},  # tolerated
            {"timestamp": NOW + timedelta(seconds=301), "device_id": 1, "datapoint_id": 3, "value": 1.0},  # future
            {"timestamp": T0 + timedelta(seconds=30), "device_id": 1, "datapoint_id": 2, "value": float("inf")},
        ],
        times=("timestamp",),
    )
    outcome = c.check_readings(rows, NOW, SETTINGS)
    assert outcome.severity is c.Severity.ERROR and not outcome.passed
    failed = dict(zip(outcome.failures["value"].index, outcome.failures[c.FAILED_CHECKS], strict=True))
    assert outcome.failure_count == 4
    assert "not_from_the_future" in failed[2] and "finite" in failed[3]
    assert all("multiple_fields_uniqueness" in failed[i] for i in (0, 1))


def test_plausibility_with_missing_bounds_and_counts() -> None:
    base = {"datapoint_id": 7, "bucket": T0, "sample_count": 10}
    rows = frame(
        [
            {
                **base,
                "device_id": 1,
                "min_value": 0.0,
                "max_value": 90.0,
                "below_count": 0,
                "above_count": 2,
                "range_min": -40.0,
                "range_max": 85.0,
            },
            {
                **base,
                "device_id": 2,
                "min_value": -1.0,
                "max_value": 1e9,
                "below_count": 1,
                "above_count": 0,
                "range_min": 0.0,
                "range_max": None,
            },  # no upper bound: only the lower one applies
            {
                **base,
                "device_id": 3,
                "min_value": 1.0,
                "max_value": 2.0,
                "below_count": 0,
                "above_count": 0,
                "range_min": None,
                "range_max": None,
            },
        ],
        times=("bucket",),
    )
    rows["range_max"] = rows["range_max"].astype("float64")
    rows["range_min"] = rows["range_min"].astype("float64")
    outcome = c.check_plausibility(rows)
    assert list(outcome.failures["device_id"]) == [1, 2] and outcome.failure_count == 3


def test_aggregate_schema() -> None:
    good = {
        "bucket": T0,
        "device_id": 1,
        "datapoint_id": 1,
        "avg_value": 0.1,
        "min_value": 0.1,
        "max_value": 0.1,
        "sample_count": 3,
        "first_value": 0.1,
        "last_value": 0.1,
        "stddev_value": 0.0,
    }
    rows = frame(
        [
            good,
            {**good, "avg_value": 0.30000000000000004 / 3, "datapoint_id": 2},  # float rounding above max: fine
            {**good, "datapoint_id": 3, "avg_value": 5.0},  # avg above max
            {**good, "datapoint_id": 4, "sample_count": 1, "stddev_value": 0.0},  # stddev of one sample
            {**good, "datapoint_id": 5, "bucket": T0 + timedelta(minutes=30)},  # not aligned
            {**good, "datapoint_id": 6, "bucket": T0 + timedelta(days=1)},  # outside the window
        ],
        times=("bucket",),
    )
    outcome = c.check_aggregates(rows, T0, T0 + timedelta(days=1), timedelta(hours=1))
    assert sorted(outcome.failures["datapoint_id"]) == [3, 4, 5, 6]


def test_device_concerns() -> None:
    completeness = frame(
        [
            {
                "device_id": 1,
                "hour": T0,
                "frames": 120,
                "expected_frames": 120.0,
                "completeness": 1.0,
                "interval_s": 30,
            },
            {
                "device_id": 1,
                "hour": T0 + timedelta(hours=1),
                "frames": 100,
                "expected_frames": 120.0,
                "completeness": 100 / 120,
                "interval_s": 30,
            },
        ],
        times=("hour",),
    )
    assert list(c.check_completeness(completeness, SETTINGS).failures["frames"]) == [100]
    gaps = frame(
        [
            {"device_id": 1, "gap_start": T0, "gap_end": T0 + timedelta(seconds=300), "gap_s": 300.0, "interval_s": 30},
            {"device_id": 1, "gap_start": T0, "gap_end": T0 + timedelta(seconds=301), "gap_s": 301.0, "interval_s": 30},
        ],
        times=("gap_start", "gap_end"),
    )
    assert list(c.check_gaps(gaps, SETTINGS).failures["gap_s"]) == [301.0]
    stuck = frame(
        [
            {
                "device_id": 1,
                "datapoint_id": 1,
                "value": 1.0,
                "run_start": T0,
                "run_end": T0 + timedelta(hours=2),
                "run_s": 7200.0,
                "samples": 240,
            },
            {
                "device_id": 1,
                "datapoint_id": 2,
                "value": 1.0,
                "run_start": T0,
                "run_end": T0 + timedelta(hours=3),
                "run_s": 10800.0,
                "samples": 3,
            },  # long but sparse: too few readings to call it stuck
        ],
        times=("run_start", "run_end"),
    )
    assert list(c.check_stuck(stuck, SETTINGS).failures["datapoint_id"]) == [1]
    fresh = frame(
        [
            {"device_id": 1, "last_seen": T0, "silent_for_s": 300.0, "interval_s": 30},
            {"device_id": 2, "last_seen": T0, "silent_for_s": 301.0, "interval_s": 30},
            {"device_id": 3, "last_seen": None, "silent_for_s": None, "interval_s": 30},  # no data: not silent
        ],
        times=("last_seen",),
    )
    fresh["silent_for_s"] = fresh["silent_for_s"].astype("float64")
    outcome = c.check_freshness(fresh, SETTINGS)
    assert list(outcome.failures["device_id"]) == [2] and outcome.severity is c.Severity.WARN


def test_window() -> None:
    window = CheckWindow.of_day(date(2025, 6, 1), NOW)
    assert (window.start, window.end, window.observed_end) == (T0, T0 + timedelta(days=1), T0 + timedelta(days=1))
    assert len(window.hours()) == 24
    today = CheckWindow.of_day(date(2025, 6, 2), NOW)
    assert today.observed_end == NOW
    with pytest.raises(ValueError):
        CheckWindow(T0, T0, NOW)


def test_silence_plan_and_cursor() -> None:
    assert plan({}, {"5": "a", "12": "b"}) == (["5", "12"], [])
    assert plan({"5": "a"}, {"5": "a", "7": "c"}) == (["7"], [])
    assert plan({"5": "a", "7": "c"}, {"7": "c"}) == ([], ["5"])
    assert parse_cursor(None) == {} and parse_cursor("not json") == {}
    assert parse_cursor('{"silent": {"3": "t"}}') == {"3": "t"}


def test_dead_letter_controller() -> None:
    topic: Headers = [("f2.mqtt.topic", b"tele/f2-aabbccddee01/sensor-mode/J1/sensor-1")]
    assert controller_of(b"AABBCCDDEE02", None) == "aabbccddee02"
    assert controller_of(b"not a mac", topic) == "aabbccddee01"
    assert controller_of(None, [("f2.mqtt.topic", b"garbage")]) is None


def test_dbt_profile_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("F2_DBT_HOST", "F2_DBT_USER", "F2_DBT_PASSWORD", "F2_DBT_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    env = profile_environment("postgresql://reader:s%40cret@db.example:6543/f2?sslmode=require")
    assert (env["F2_DBT_HOST"], env["F2_DBT_PORT"], env["F2_DBT_USER"], env["F2_DBT_PASSWORD"]) == (
        "db.example",
        "6543",
        "reader",
        "s@cret",
    )
    assert (env["F2_DBT_DBNAME"], env["F2_DBT_SSLMODE"], env["F2_DBT_SCHEMA"]) == ("f2", "require", "f2_analytics")
    monkeypatch.setenv("F2_DBT_USER", "analyst")
    assert profile_environment("postgresql://reader@h/f2", DbtSettings())["F2_DBT_USER"] == "analyst"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_QUALITY_STUCK_EXEMPT_LABELS", "Battery, Energy,Counter")
    monkeypatch.setenv("F2_QUALITY_SILENT_AFTER_INTERVALS", "4")
    settings = QualitySettings()
    assert settings.stuck_exempt_labels == ["Battery", "Energy", "Counter"] and settings.silent_after_intervals == 4
