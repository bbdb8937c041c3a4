"""The history's Dagster runs: the reading and event aggregate partitions of the loaded hours with their checks,
the daily aggregates and the data-quality report of each complete day, and the checks on recent readings, executed with
the code location's own assets, checks, jobs and resources and recorded in the demo's instance (the one
`f2 dagster dev` shows, $F2_STATE_DIR/dagster), so the UI shows the partitions, check results and reports.

Only the definitions these runs need are loaded, not the whole code location: the dbt assets would need a dbt
manifest that `f2 dagster dev` prepares only when it loads. The resources read the F2_* variables of the
process, as they do in a run worker: the caller sets them.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from f2_platform.demo.plan import HistoryPartitions

TAGS = {"f2/trigger": "demo-history"}
# Dagster logs every event of an in-process run to the console; the demo prints its own summary. The WARN
# checks' messages (a door of the sample fleet held open, say) stay in the runs' event logs in the UI; errors
# still show here.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# The alerts the history's WARN checks raise (doors held open in the past day) are logged at WARNING: dozens of
# lines in the middle of the demo's output. Errors (a blocking check failed) still show.
ALERT_LOGGER = "f2_platform.quality.alerts"

Say = Callable[[str], None]


@dataclass
class JobTally:
    """What the runs of one job did: partitions materialized, runs that failed, check results."""

    materialized: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_warned: int = 0  # WARN checks that did not pass: a device misbehaves
    checks_failed: int = 0  # ERROR checks that did not pass: the data is wrong

    @property
    def checks(self) -> int:
        return self.checks_passed + self.checks_warned + self.checks_failed

    def checks_label(self) -> str:
        return f"{self.checks} checks: {self.checks_passed} passed, {self.checks_warned} warned, " + (
            f"{self.checks_failed} failed" if self.checks_failed else "none failed"
        )


@dataclass
class Materialized:
    hourly: JobTally = field(default_factory=JobTally)
    daily: JobTally = field(default_factory=JobTally)
    events_hourly: JobTally = field(default_factory=JobTally)
    events_daily: JobTally = field(default_factory=JobTally)
    report: JobTally = field(default_factory=JobTally)
    recent: JobTally = field(default_factory=JobTally)
    reports: dict[str, str] = field(default_factory=dict)  # day -> HTML file

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _definitions() -> Any:
    import dagster as dg

    # Beta and preview parameters of our own definitions (backfill policies, partitioned checks): known.
    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)
    from f2_platform.defs.aggregates.assets import readings_daily, readings_hourly
    from f2_platform.defs.aggregates.schedules import readings_daily_job, readings_hourly_job
    from f2_platform.defs.events import external_assets as events
    from f2_platform.defs.events.assets import events_daily, events_hourly
    from f2_platform.defs.events.checks import DAILY_EVENT_CHECKS, HOURLY_EVENT_CHECKS
    from f2_platform.defs.events.schedules import events_daily_job, events_hourly_job
    from f2_platform.defs.quality.aggregate_checks import DAILY_CHECKS, HOURLY_CHECKS
    from f2_platform.defs.quality.readings_checks import READINGS_CHECKS, recent_readings_checks_job
    from f2_platform.defs.quality.report_asset import data_quality_report, data_quality_report_job
    from f2_platform.defs.resources import resources
    from f2_platform.defs.streaming_observability import external_assets as streaming

    return dg.Definitions(
        assets=[
            streaming.raw_topic,
            streaming.decoded_topic,
            streaming.deadletter_topic,
            streaming.decoded_data,
            events.events_topic,
            events.device_events,
            events.component_states,
            events.controller_presence,
            readings_hourly,
            readings_daily,
            events_hourly,
            events_daily,
            data_quality_report,
        ],
        asset_checks=[*HOURLY_CHECKS, *DAILY_CHECKS, *READINGS_CHECKS, *HOURLY_EVENT_CHECKS, *DAILY_EVENT_CHECKS],
        jobs=[
            readings_hourly_job,
            readings_daily_job,
            events_hourly_job,
            events_daily_job,
            data_quality_report_job,
            recent_readings_checks_job,
        ],
        resources=resources(),
    )


def _run(defs: Any, instance: Any, job: str, tally: JobTally, partition: str | None = None) -> Any:
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, partition_key=partition, tags=TAGS, run_config=QUIET, raise_on_error=False
    )
    if result.get_asset_materialization_events() and partition is not None:
        tally.materialized.append(partition)
    if not result.success:
        tally.failed.append(partition or job)
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            tally.checks_passed += 1
        elif evaluation.severity.value == "WARN":
            tally.checks_warned += 1
        else:
            tally.checks_failed += 1
    return result


@contextlib.contextmanager
def _alerts_quiet() -> Iterator[None]:
    logger = logging.getLogger(ALERT_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def materialize_history(dagster_home: Path, partitions: HistoryPartitions, say: Say) -> Materialized:
    """Runs the jobs of the history's partitions in the instance at `dagster_home`; a failed run is counted
    and the rest still run (a blocking check failing on a day is something the UI should show)."""
    import dagster as dg

    defs = _definitions()
    done = Materialized()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance, _alerts_quiet():
        if partitions.hourly:
            first, last = partitions.hourly[0], partitions.hourly[-1]
            say(f"  readings_hourly and events_hourly: {len(partitions.hourly)} partitions, {first} to {last}")
        for key in partitions.hourly:
            _run(defs, instance, "readings_hourly_job", done.hourly, key)
            _run(defs, instance, "events_hourly_job", done.events_hourly, key)
        for day in partitions.daily:
            say(f"  readings_daily, events_daily and data_quality_report: {day}")
            _run(defs, instance, "readings_daily_job", done.daily, day)
            _run(defs, instance, "events_daily_job", done.events_daily, day)
            result = _run(defs, instance, "data_quality_report_job", done.report, day)
            for event in result.get_asset_materialization_events():
                html = event.step_materialization_data.materialization.metadata.get("report_html")
                if html is not None:
                    done.reports[day] = str(html.value)
        say("  checks on decoded_data (the most recent readings)")
        _run(defs, instance, "recent_readings_checks_job", done.recent)
    return done
