"""Asset checks on recent readings (decoded_data, the last `data_quality.recent_window_s` seconds), scheduled
hourly: the same concerns as the aggregates' checks, on what the sink wrote most recently. Readings are
validated in full here (types, finite, one row per key, not from the future); readings without a value are
reported by `missing_values`."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
from collections.abc import Callable
from datetime import timedelta

import dagster as dg

from f2_platform.defs.asset_keys import DECODED_DATA
from f2_platform.defs.quality.results import alert_if_blocking_failed, check_result
from f2_platform.defs.resources import DataQualityResource, RegistryResource, TimescaleResource
from f2_platform.environment import default_status
from f2_platform.quality import checks as c
from f2_platform.quality.evaluation import WindowEvaluation
from f2_platform.quality.fleet import load_fleet
from f2_platform.quality.window import CheckWindow

Run = Callable[[WindowEvaluation], c.CheckOutcome]

_RUNS: dict[c.Concern, Run] = {
    c.READINGS: lambda ev: ev.readings(full=True),
    c.PLAUSIBILITY: WindowEvaluation.plausibility,
    c.COMPLETENESS: WindowEvaluation.completeness,
    c.GAPS: WindowEvaluation.gaps,
    c.STUCK: WindowEvaluation.stuck,
    c.FRESHNESS: WindowEvaluation.freshness,
    c.MISSING_VALUES: WindowEvaluation.missing_values,
}


def _recent_check(concern: c.Concern, run: Run) -> dg.AssetChecksDefinition:
    blocking = concern.severity is c.Severity.ERROR

    @dg.asset_check(
        asset=DECODED_DATA,
        name=concern.name,
        description=f"{concern.title}, over recent readings ({concern.severity.value}).",
        blocking=blocking,
        metadata={"severity": concern.severity.value},
    )
    def _readings_check(
        context: dg.AssetCheckExecutionContext,
        timescale: TimescaleResource,
        registry: RegistryResource,
        data_quality: DataQualityResource,
    ) -> dg.AssetCheckResult:
        settings = data_quality.quality_settings()
        window = CheckWindow.recent(timedelta(seconds=settings.recent_window_s))
        evaluation = WindowEvaluation(timescale, load_fleet(registry.fetch_all), window, settings)
        outcome = run(evaluation)
        alert_if_blocking_failed(context, outcome, window, settings)
        return check_result(outcome, window, settings)

    return _readings_check


# A list: the defs-folder loader (f2_platform/definitions.py) collects lists of checks at module level.
READINGS_CHECKS = [_recent_check(concern, run) for concern, run in _RUNS.items()]

recent_readings_checks_job = dg.define_asset_job(
    "recent_readings_checks_job",
    selection=dg.AssetSelection.checks_for_assets(DECODED_DATA),
    description="The data-quality checks on the most recent readings.",
)
recent_readings_checks_schedule = dg.ScheduleDefinition(
    name="recent_readings_checks_schedule",
    job=recent_readings_checks_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=default_status(dg.DefaultScheduleStatus),
)
