"""Asset checks on the event aggregates' partitions, run with every events_hourly / events_daily run.

ERROR and blocking: the window's events are valid (events_valid, hourly) and the aggregate rows agree with
each other (event_aggregates_consistent). WARN: a door held open longer than F2_QUALITY_DOOR_HELD_OPEN_S
(door_held_open), alerted once per open run (door_alerts.py); a reader with more scans in a minute than
F2_QUALITY_READER_FLOOD_SCANS_PER_MINUTE (reader_flood, hourly).
"""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg

from f2_platform.defs.asset_keys import EVENTS_DAILY, EVENTS_HOURLY
from f2_platform.defs.events.door_alerts import alert_new_runs
from f2_platform.defs.quality.results import alert_if_blocking_failed, check_result
from f2_platform.defs.resources import DataQualityResource, TimescaleResource
from f2_platform.partitions import daily_partitions, hourly_partitions
from f2_platform.quality import checks as c
from f2_platform.quality import events as ev
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow
from f2_platform.timeseries import event_aggregate_sql as q

Run = Callable[[TimescaleResource, CheckWindow, QualitySettings], c.CheckOutcome]


def _valid(level: q.EventLevel) -> Run:
    return lambda ts, window, settings: ev.check_events(ev.events_frame(ts, window), window, settings)


def _consistent(level: q.EventLevel) -> Run:
    return lambda ts, window, settings: ev.check_event_aggregates(
        ev.activity_frame(ts, level, window), window, level.bucket
    )


def _held_open(level: q.EventLevel) -> Run:
    return lambda ts, window, settings: ev.check_door_held_open(ev.door_runs_frame(ts, window), settings)


def _flood(level: q.EventLevel) -> Run:
    return lambda ts, window, settings: ev.check_reader_flood(ev.reader_minutes_frame(ts, window), settings)


def _check(
    asset_key: dg.AssetKey, level: q.EventLevel, partitions_def: dg.PartitionsDefinition, concern: c.Concern, run: Run
) -> dg.AssetChecksDefinition:
    blocking = concern.severity is c.Severity.ERROR

    def _event_check(
        context: dg.AssetCheckExecutionContext, timescale: TimescaleResource, data_quality: DataQualityResource
    ) -> dg.AssetCheckResult:
        settings = data_quality.quality_settings()
        partition = context.partition_time_window
        window = CheckWindow(partition.start.astimezone(UTC), partition.end.astimezone(UTC), datetime.now(UTC))
        outcome = run(timescale, window, settings)
        alert_if_blocking_failed(context, outcome, window, settings)
        result = check_result(outcome, window, settings)
        if concern is not ev.DOOR_HELD_OPEN:
            return result
        runs = c.records(outcome.failures.drop(columns=[c.FAILED_CHECKS], errors="ignore"))
        alerted = alert_new_runs(timescale, runs, settings.door_held_open_s, window.label())
        if runs:
            context.log.warning(
                f"{len(runs)} door run(s) held open longer than {settings.door_held_open_s} s; "
                f"{len(alerted)} alerted now, {len(runs) - len(alerted)} alerted before"
            )
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=result.severity,
            description=result.description,
            metadata={
                **result.metadata,
                "threshold_s": settings.door_held_open_s,
                "runs_alerted_now": len(alerted),
                "runs_alerted_before": len(runs) - len(alerted),
            },
        )

    with warnings.catch_warnings():
        # Partitioned checks are "preview" in Dagster 1.13; they are what runs with each partition's run.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.asset_check(
            asset=asset_key,
            name=concern.name,
            description=f"{concern.title} ({concern.severity.value}{', blocking' if blocking else ''}).",
            blocking=blocking,
            partitions_def=partitions_def,
            metadata={"severity": concern.severity.value, "table": level.activity_table},
        )(_event_check)


# Lists: the defs-folder loader (f2_platform/definitions.py) collects lists of checks at module level.
HOURLY_EVENT_CHECKS = [
    _check(EVENTS_HOURLY, q.HOURLY, hourly_partitions, ev.EVENTS_VALID, _valid(q.HOURLY)),
    _check(EVENTS_HOURLY, q.HOURLY, hourly_partitions, ev.EVENT_AGGREGATES, _consistent(q.HOURLY)),
    _check(EVENTS_HOURLY, q.HOURLY, hourly_partitions, ev.DOOR_HELD_OPEN, _held_open(q.HOURLY)),
    _check(EVENTS_HOURLY, q.HOURLY, hourly_partitions, ev.READER_FLOOD, _flood(q.HOURLY)),
]
DAILY_EVENT_CHECKS = [
    _check(EVENTS_DAILY, q.DAILY, daily_partitions, ev.EVENT_AGGREGATES, _consistent(q.DAILY)),
    _check(EVENTS_DAILY, q.DAILY, daily_partitions, ev.DOOR_HELD_OPEN, _held_open(q.DAILY)),
]
