"""The daily data-quality report: numbers (JSON sidecar), charts and an HTML page that reads offline.

`generate_daily_report` is what the Dagster asset and `f2 report dq --date D` both run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.quality.deadletters import DeadLetterCounts, count_dead_letters
from f2_platform.quality.evaluation import WindowEvaluation
from f2_platform.quality.fleet import load_fleet
from f2_platform.quality.report.events import build_events_section
from f2_platform.quality.report.events import summary_of as events_summary
from f2_platform.quality.report.numbers import build_report, markdown_summary
from f2_platform.quality.report.reconciliation import build_reconciliation_section
from f2_platform.quality.report.reconciliation import summary_of as reconciliation_summary
from f2_platform.quality.report.render import ReportFiles, write_report
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow

log = logging.getLogger(__name__)

__all__ = ["GeneratedReport", "default_report_dir", "generate_daily_report", "markdown_summary"]


@dataclass(frozen=True)
class GeneratedReport:
    files: ReportFiles
    report: dict[str, Any]
    evaluation: WindowEvaluation


def default_report_dir(settings: QualitySettings | None = None) -> Path:
    settings = settings or QualitySettings()
    if settings.report_dir is not None:
        return settings.report_dir
    from f2_platform.environment import connection_settings

    return connection_settings().state_dir / "reports" / "data-quality"


def generate_daily_report(
    day: date,
    timescale: TimescaleResource,
    registry: RegistryResource,
    kafka: KafkaAdminResource | None,
    out_dir: Path | None = None,
    controllers: Sequence[str] | None = None,
    as_of: datetime | None = None,
    settings: QualitySettings | None = None,
) -> GeneratedReport:
    """Evaluates every concern over `day` (UTC) for the fleet, or the devices wired to `controllers`, counts
    the day's dead letters (skipped when `kafka` is None), adds the day's events of those controllers (access,
    alarms, doors held open, presence outages), and writes the HTML page and its JSON sidecar."""
    settings = settings or QualitySettings()
    window = CheckWindow.of_day(day, as_of or datetime.now(UTC))
    fleet = load_fleet(registry.fetch_all, controllers)
    evaluation = WindowEvaluation(timescale, fleet, window, settings)
    evaluation.all_raw()
    dead: DeadLetterCounts | None = None
    error: str | None = None
    if kafka is None:
        error = "not read (no Kafka connection given)"
    else:
        try:
            dead = count_dead_letters(
                kafka, window.start, window.end, set(fleet.controllers) if fleet.controllers else None
            )
        except Exception as exc:
            log.warning("dead letters of %s could not be counted: %s", day, exc)
            error = str(exc)
    report = build_report(evaluation, dead, error)
    report["events"] = build_events_section(timescale, window, fleet.controllers, settings)
    report["summary"].update(events_summary(report["events"]))
    report["reconciliation"] = build_reconciliation_section(timescale, window, fleet.controllers)
    report["summary"].update(reconciliation_summary(report["reconciliation"]))
    files = write_report(report, out_dir or default_report_dir(settings))
    return GeneratedReport(files, report, evaluation)
