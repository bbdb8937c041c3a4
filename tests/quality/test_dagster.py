"""The checks in Dagster: they run with the aggregate partitions, carry failure counts and failing rows,
block downstream assets when the data is wrong and only warn when a device misbehaves; the dbt models sit
below the aggregates in the asset graph and are gated by the daily aggregate's blocking checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest

from f2_platform.quality import alerts
from tests.quality import seed as s
from tests.quality.conftest import copy_readings, forget_window, hourly_range_tags

pytestmark = pytest.mark.integration

ANALYTICS = {
    "stg_readings",
    "stg_readings_hourly",
    "stg_readings_daily",
    "stg_devices",
    "stg_datapoints",
    "device_daily_summary",
    "fleet_health_daily",
    "stg_device_events",
    "stg_component_states",
    "stg_controller_presence",
    "access_daily",
    "access_credentials_daily",
    "alarms_daily",
}


def evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def failing_devices(evaluation: dg.AssetCheckEvaluation) -> set[int]:
    devices = evaluation.metadata["failing_devices"].value
    assert isinstance(devices, list)
    return {int(d) for d in devices}


def test_definitions_load_with_the_dbt_models(code_location: dg.Definitions) -> None:
    repository = code_location.get_repository_def()
    graph = repository.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"analytics/{name}" for name in ANALYTICS} <= keys
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert parents["analytics/stg_readings_daily"] == {"readings_daily"}
    assert parents["analytics/stg_readings_hourly"] == {"readings_hourly"}
    assert parents["analytics/stg_readings"] == {"decoded_data"}
    assert "analytics/stg_readings_daily" in parents["analytics/device_daily_summary"]
    assert isinstance(
        graph.get(dg.AssetKey(["analytics", "device_daily_summary"])).partitions_def, dg.DailyPartitionsDefinition
    )
    # The report reads the day's events itself (its events section).
    assert parents["data_quality_report"] == {"decoded_data", "kafka/f2_deadletter", "device_events"}
    assert parents["analytics/stg_device_events"] == {"device_events"}
    assert "analytics/stg_device_events" in parents["analytics/access_daily"]

    checks = {(k.asset_key.to_user_string(), k.name): graph.get_check_spec(k) for k in graph.asset_check_keys}
    for asset in ("readings_hourly", "readings_daily"):
        assert checks[(asset, "plausible_values")].blocking and checks[(asset, "aggregate_integrity")].blocking
        assert not checks[(asset, "completeness")].blocking
    for name in ("reading_gaps", "stuck_sensors", "device_freshness", "missing_values"):
        assert not checks[("readings_daily", name)].blocking and not checks[("decoded_data", name)].blocking
    assert checks[("decoded_data", "readings_valid")].blocking
    assert checks[("events_hourly", "events_valid")].blocking
    for asset in ("events_hourly", "events_daily"):
        assert (
            checks[(asset, "event_aggregates_consistent")].blocking and not checks[(asset, "door_held_open")].blocking
        )

    schedules = {sd.name: sd.cron_schedule for sd in repository.schedule_defs}
    assert schedules["data_quality_report_schedule"] == "50 0 * * *"
    assert schedules["analytics_daily_schedule"] == "40 0 * * *"
    assert schedules["recent_readings_checks_schedule"] == "15 * * * *"
    assert (schedules["events_hourly_schedule"], schedules["events_daily_schedule"]) == ("10 * * * *", "25 0 * * *")
    assert "device_silence_sensor" in {sd.name for sd in repository.sensor_defs}
    assert {"analytics_daily_job", "data_quality_report_job", "recent_readings_checks_job"} <= set(repository.job_names)


def test_checks_run_with_the_aggregate_partitions(aggregated: dict[str, Any], seeded: s.SeededDay) -> None:
    mine = set(seeded.device_ids)
    hourly, daily = evaluations(aggregated["hourly"]), evaluations(aggregated["daily"])
    # The aggregates themselves were written: the checks run after the asset's step.
    assert aggregated["hourly"].get_step_success_events() and aggregated["daily"].get_step_success_events()

    for evaluations_of, asset in ((hourly, "readings_hourly"), (daily, "readings_daily")):
        integrity = evaluations_of[(asset, "aggregate_integrity")]
        assert integrity.passed, integrity.metadata
        plausible = evaluations_of[(asset, "plausible_values")]
        assert not plausible.passed and plausible.severity == dg.AssetCheckSeverity.ERROR and plausible.blocking
        assert failing_devices(plausible) & mine == {seeded.devices[s.OUT_OF_RANGE]}
        # On aggregate rows the count is of rows holding an implausible value: one per seeded series.
        assert plausible.metadata["failure_count"].value == len(s.IMPLAUSIBLE)

    expectations = {
        "completeness": {seeded.devices[s.SILENT], seeded.devices[s.GAP]},
        "reading_gaps": {seeded.devices[s.GAP]},
        "stuck_sensors": {seeded.devices[s.STUCK]},
        "device_freshness": {seeded.devices[s.SILENT]},
    }
    for name, devices in expectations.items():
        evaluation = daily[("readings_daily", name)]
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN, name
        assert failing_devices(evaluation) & mine == devices, name
    # A blocking check failed: the runs fail, the aggregates' downstream would not run.
    assert not aggregated["hourly"].success and not aggregated["daily"].success


def test_a_failed_blocking_check_alerts(aggregated: dict[str, Any], seeded: s.SeededDay) -> None:
    posted = [b for b in aggregated["alerts"] if b["kind"] == alerts.KIND_BLOCKING_CHECK]
    checks = {(b["details"]["asset"], b["details"]["check"]) for b in posted}
    assert checks == {("readings_hourly", "plausible_values"), ("readings_daily", "plausible_values")}
    for body in posted:
        assert body["severity"] == "ERROR" and body["text"].startswith("[ERROR] blocking check plausible_values")
        assert any(row["device_id"] == seeded.devices[s.OUT_OF_RANGE] for row in body["details"]["sample"])


def test_analytics_are_blocked_by_wrong_data(
    code_location: dg.Definitions, instance: dg.DagsterInstance, aggregated: dict[str, Any], seeded: s.SeededDay
) -> None:
    result = code_location.resolve_job_def("analytics_daily_job").execute_in_process(
        instance=instance, partition_key=seeded.day.isoformat(), raise_on_error=False
    )
    assert not result.success
    assert not evaluations(result)[("readings_daily", "plausible_values")].passed
    materialized = {str(e.asset_key.to_user_string()) for e in result.get_asset_materialization_events() if e.asset_key}
    assert not any(key.startswith("analytics/") for key in materialized)


def test_analytics_build_a_clean_day(
    code_location: dg.Definitions,
    instance: dg.DagsterInstance,
    seeded: s.SeededDay,
    migrated,
    aggregated: dict[str, Any],
) -> None:
    clean = seeded.start - timedelta(days=1)
    reference = seeded.devices[s.REFERENCE]
    readings = [
        (clean + timedelta(hours=9, seconds=30 * k), reference, seeded.datapoints[label], value)
        for k in range(240)
        for label, value in s.normal_values(k, 0).items()
    ]
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        copy_readings(ts, readings)
    try:
        build_clean_day(code_location, instance, migrated, seeded, clean, readings)
    finally:
        # Other tests judge the seeded day with a day of look-back: the clean day must not leave a gap.
        forget_window(migrated.timeseries_dsn, [reference], clean, seeded.start)


def build_clean_day(
    code_location: dg.Definitions,
    instance: dg.DagsterInstance,
    migrated: Any,
    seeded: s.SeededDay,
    clean: Any,
    readings: list[s.Reading],
) -> None:
    reference = seeded.devices[s.REFERENCE]
    assert (
        code_location.resolve_job_def("readings_hourly_job")
        .execute_in_process(instance=instance, tags=hourly_range_tags(clean, 24))
        .success
    )
    # Only the reference device reported, two hours: it is silent at the day's end (a warning, not a block).
    daily = code_location.resolve_job_def("readings_daily_job").execute_in_process(
        instance=instance, partition_key=clean.date().isoformat()
    )
    assert daily.success
    assert not evaluations(daily)[("readings_daily", "device_freshness")].passed

    result = code_location.resolve_job_def("analytics_daily_job").execute_in_process(
        instance=instance, partition_key=clean.date().isoformat()
    )
    assert result.success
    materialized = {str(e.asset_key.to_user_string()) for e in result.get_asset_materialization_events() if e.asset_key}
    assert {f"analytics/{name}" for name in ANALYTICS} <= materialized
    dbt_checks = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == "analytics"]
    assert dbt_checks and all(e.passed for e in dbt_checks)

    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        rows = ts.execute(
            "SELECT datapoint_label, readings, min_value, max_value, uptime_share, completeness "
            "FROM f2_analytics_test.device_daily_summary WHERE device_id = %s AND day = %s ORDER BY datapoint_label",
            (reference, clean),
        ).fetchall()
    expected: dict[str, list[float]] = {}
    for _, _, datapoint, value in readings:
        label = {v: k for k, v in seeded.datapoints.items()}[datapoint]
        expected.setdefault(label, []).append(value)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == sorted(
        (label, len(values), min(values), max(values)) for label, values in expected.items()
    )
    assert all(float(r[4]) == round(2 / 24, 4) and float(r[5]) == round(240 / 2880, 4) for r in rows)


def test_the_daily_schedule_reports_the_previous_day(
    code_location: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    schedule = code_location.get_schedule_def("data_quality_report_schedule")
    tick = datetime(2026, 3, 15, 0, 50, tzinfo=UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-03-14"
    assert code_location.resolve_job_def(schedule.job_name).asset_layer.selected_asset_keys == {
        dg.AssetKey("data_quality_report")
    }
