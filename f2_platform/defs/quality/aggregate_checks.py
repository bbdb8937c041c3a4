"""Asset checks on the aggregate partitions, run with every aggregate run of the window.

ERROR and blocking: the window's rows are consistent (aggregate_integrity) and their min/max lie inside the
plausible ranges of registered series (plausible_values). WARN: the concerns of misbehaving devices over the
window's raw readings (completeness on both levels; gaps, stuck sensors, silence at the day's end and
readings without a value on the daily level).
"""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import dagster as dg

from f2_platform.defs.asset_keys import READINGS_DAILY, READINGS_HOURLY
from f2_platform.defs.quality.results import alert_if_blocking_failed, check_result
from f2_platform.defs.resources import DataQualityResource, RegistryResource, TimescaleResource
from f2_platform.partitions import daily_partitions, hourly_partitions
from f2_platform.quality import checks as c
from f2_platform.quality.evaluation import WindowEvaluation
from f2_platform.quality.fleet import load_fleet
from f2_platform.quality.window import CheckWindow

Run = Callable[[WindowEvaluation], c.CheckOutcome]


def _evaluation(
    context: dg.AssetCheckExecutionContext,
    timescale: TimescaleResource,
    registry: RegistryResource,
    data_quality: DataQualityResource,
) -> WindowEvaluation:
    window = context.partition_time_window
    check_window = CheckWindow(window.start.astimezone(UTC), window.end.astimezone(UTC), datetime.now(UTC))
    fleet = load_fleet(registry.fetch_all)
    return WindowEvaluation(timescale, fleet, check_window, data_quality.quality_settings())


def _check(
    asset_key: dg.AssetKey,
    table: str,
    width: timedelta,
    partitions_def: dg.PartitionsDefinition,
    concern: c.Concern,
    run: Run,
) -> dg.AssetChecksDefinition:
    blocking = concern.severity is c.Severity.ERROR

    def _aggregate_check(
        context: dg.AssetCheckExecutionContext,
        timescale: TimescaleResource,
        registry: RegistryResource,
        data_quality: DataQualityResource,
    ) -> dg.AssetCheckResult:
        evaluation = _evaluation(context, timescale, registry, data_quality)
        outcome = run(evaluation)
        alert_if_blocking_failed(context, outcome, evaluation.window, evaluation.settings)
        return check_result(outcome, evaluation.window, evaluation.settings)

    with warnings.catch_warnings():
        # Partitioned checks are "preview" in Dagster 1.13; they are what runs with each partition's run.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.asset_check(
            asset=asset_key,
            name=concern.name,
            description=f"{concern.title} ({concern.severity.value}{', blocking' if blocking else ''}).",
            blocking=blocking,
            partitions_def=partitions_def,
            metadata={"severity": concern.severity.value, "table": table},
        )(_aggregate_check)


def _integrity(table: str, width: timedelta) -> Run:
    return lambda ev: ev.aggregates(table, width)[0]


def _plausibility(table: str, width: timedelta) -> Run:
    return lambda ev: ev.aggregates(table, width)[1]


def _checks_of(
    asset_key: dg.AssetKey,
    table: str,
    width: timedelta,
    partitions_def: dg.PartitionsDefinition,
    warn: dict[c.Concern, Run],
) -> list[dg.AssetChecksDefinition]:
    runs: dict[c.Concern, Run] = {
        c.AGGREGATES: _integrity(table, width),
        c.PLAUSIBILITY: _plausibility(table, width),
        **warn,
    }
    return [_check(asset_key, table, width, partitions_def, concern, run) for concern, run in runs.items()]


# Lists: the defs-folder loader (f2_platform/definitions.py) collects lists of checks at module level.
HOURLY_CHECKS = _checks_of(
    READINGS_HOURLY,
    "readings_hourly",
    timedelta(hours=1),
    hourly_partitions,
    {c.COMPLETENESS: WindowEvaluation.completeness},
)
DAILY_CHECKS = _checks_of(
    READINGS_DAILY,
    "readings_daily",
    timedelta(days=1),
    daily_partitions,
    {
        c.COMPLETENESS: WindowEvaluation.completeness,
        c.GAPS: WindowEvaluation.gaps,
        c.STUCK: WindowEvaluation.stuck,
        c.FRESHNESS: WindowEvaluation.freshness,
        c.MISSING_VALUES: WindowEvaluation.missing_values,
    },
)
