"""The numbers of a daily data-quality report, as one JSON-ready dict (the sidecar): the HTML page and its
charts are drawn from this dict only, so the page and the sidecar can never disagree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from f2_platform.quality import checks as c
from f2_platform.quality.deadletters import DeadLetterCounts
from f2_platform.quality.evaluation import WindowEvaluation

REPORT_KIND = "f2-data-quality"
REPORT_VERSION = 1
FUTURE_CHECK = "not_from_the_future"


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).tz_convert(UTC).isoformat()


def _num(value: Any, digits: int = 4) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), digits)


def build_report(
    evaluation: WindowEvaluation,
    dead_letters: DeadLetterCounts | None,
    dead_letter_error: str | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    window, fleet, settings = evaluation.window, evaluation.fleet, evaluation.settings
    outcomes = evaluation.outcomes
    names = fleet.device_names()
    devices = fleet.cadenced()
    hours = window.hours()

    cadence = evaluation.frames[c.COMPLETENESS.name]
    freshness = evaluation.frames[c.FRESHNESS.name]
    fresh_by_device = {int(r.device_id): r for r in freshness.itertuples()}
    silent_ids = (
        set(outcomes[c.FRESHNESS.name].failures["device_id"].astype(int))
        if not outcomes[c.FRESHNESS.name].failures.empty
        else set()
    )

    device_rows: list[dict[str, Any]] = []
    for d in devices.itertuples():
        device_id = int(d.device_id)
        mine = cadence[cadence["device_id"] == device_id]
        by_hour = {pd.Timestamp(h).to_pydatetime(): r for h, r in zip(mine["hour"], mine.itertuples(), strict=True)}
        hourly = [_num(by_hour[h].completeness) if h in by_hour else None for h in hours]
        expected = float(mine["expected_frames"].sum())
        frames = int(mine["frames"].sum())
        fresh = fresh_by_device.get(device_id)
        last_seen = _iso(fresh.last_seen) if fresh is not None else None
        status = "silent" if device_id in silent_ids else ("no data" if last_seen is None else "ok")
        device_rows.append(
            {
                "device_id": device_id,
                "device_name": str(d.device_name),
                "template": str(d.template_name),
                "controller_mac": str(d.controller_mac),
                "connector": int(d.connector),
                "position": int(d.position),
                "expected_interval_s": int(d.expected_interval_s),
                "readings": int(mine["readings"].sum()),
                "frames": frames,
                "expected_frames": _num(expected, 2),
                "completeness": _num(min(1.0, frames / expected) if expected > 0 else None),
                "hourly_completeness": hourly,
                "last_seen": last_seen,
                "silent_for_s": _num(fresh.silent_for_s, 1) if fresh is not None else None,
                "status": status,
            }
        )

    low_hours = [
        {
            "device_id": int(r.device_id),
            "device_name": names.get(int(r.device_id)),
            "hour": _iso(r.hour),
            "frames": int(r.frames),
            "expected_frames": _num(r.expected_frames, 2),
            "completeness": _num(r.completeness),
        }
        for r in outcomes[c.COMPLETENESS.name].failures.itertuples()
    ]

    report: dict[str, Any] = {
        "report": REPORT_KIND,
        "version": REPORT_VERSION,
        "day": window.start.astimezone(UTC).date().isoformat(),
        "window": {"start": _iso(window.start), "end": _iso(window.end)},
        "as_of": _iso(window.as_of),
        "observed_until": _iso(window.observed_end),
        "generated_at": _iso(generated_at or datetime.now(UTC)),
        "scope": {
            "controllers": list(fleet.controllers) if fleet.controllers else None,
            "devices": len(fleet.devices),
            "periodic_devices": len(devices),
        },
        "thresholds": {
            "future_tolerance_s": settings.future_tolerance_s,
            "silent_after_intervals": settings.silent_after_intervals,
            "gap_after_intervals": settings.gap_after_intervals,
            "min_completeness": settings.min_completeness,
            "stuck_after_s": settings.stuck_after_s,
            "stuck_min_samples": settings.stuck_min_samples,
            "stuck_exempt_labels": list(settings.stuck_exempt_labels),
        },
        "checks": [
            {
                "name": o.name,
                "title": o.concern.title,
                "severity": o.severity.value,
                "passed": o.passed,
                "failure_count": o.failure_count,
                "rows_checked": o.rows_checked,
                "errors": o.errors,
            }
            for o in outcomes.values()
        ],
        "hours": [_iso(h) for h in hours],
        "devices": device_rows,
        "completeness": {"min_completeness": settings.min_completeness, "low_hours": low_hours},
        "out_of_range": _out_of_range(evaluation),
        "gaps": _gaps(evaluation, names),
        "stuck": _stuck(evaluation, names),
        "silent_devices": [
            {
                "device_id": r["device_id"],
                "device_name": r["device_name"],
                "last_seen": r["last_seen"],
                "silent_for_s": r["silent_for_s"],
                "threshold_s": settings.silent_after_intervals * r["expected_interval_s"],
            }
            for r in device_rows
            if r["status"] == "silent"
        ],
        "no_data_devices": [
            {"device_id": r["device_id"], "device_name": r["device_name"]}
            for r in device_rows
            if r["status"] == "no data"
        ],
        "future_readings": _future(evaluation, names),
        "non_finite_readings": {"total": int(evaluation.suspect_totals.get("non-finite", 0))},
        "readings_without_value": {"total": evaluation.outcomes[c.MISSING_VALUES.name].failure_count},
        "dead_letters": _dead_letters(dead_letters, dead_letter_error, hours),
    }
    report["summary"] = _summary(report, outcomes)
    return report


def _out_of_range(evaluation: WindowEvaluation) -> dict[str, Any]:
    frame = evaluation.frames[c.PLAUSIBILITY.name]
    points = evaluation.fleet.datapoints.merge(
        evaluation.fleet.devices[["template_id", "template_name"]].drop_duplicates(), on="template_id"
    )
    by_datapoint = []
    flagged = frame[(frame["below_count"] + frame["above_count"]) > 0]
    for dp in points.sort_values(["template_name", "datapoint_id"]).itertuples():
        rows = flagged[flagged["datapoint_id"] == dp.datapoint_id]
        if rows.empty:
            continue
        below, above = int(rows["below_count"].sum()), int(rows["above_count"].sum())
        by_datapoint.append(
            {
                "datapoint_id": int(dp.datapoint_id),
                "template": str(dp.template_name),
                "label": str(dp.label),
                "unit": str(dp.unit),
                "range_min": _num(dp.min_value),
                "range_max": _num(dp.max_value),
                "below": below,
                "above": above,
                "total": below + above,
                "devices": int(rows["device_id"].nunique()),
            }
        )
    series_hours = [
        {
            "device_id": int(r.device_id),
            "datapoint_id": int(r.datapoint_id),
            "hour": _iso(r.bucket),
            "readings": int(r.sample_count),
            "below": int(r.below_count),
            "above": int(r.above_count),
            "min_value": _num(r.min_value),
            "max_value": _num(r.max_value),
        }
        for r in flagged.itertuples()
    ]
    return {
        "total": sum(d["total"] for d in by_datapoint),
        "by_datapoint": by_datapoint,
        "by_series_hour": series_hours,
    }


def _gaps(evaluation: WindowEvaluation, names: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "device_id": int(r.device_id),
            "device_name": names.get(int(r.device_id)),
            "start": _iso(r.gap_start),
            "end": _iso(r.gap_end),
            "duration_s": _num(r.gap_s, 1),
            "missed_frames": max(0, round(float(r.gap_s) / int(r.interval_s)) - 1),
        }
        for r in evaluation.outcomes[c.GAPS.name].failures.itertuples()
    ]


def _stuck(evaluation: WindowEvaluation, names: dict[int, str]) -> list[dict[str, Any]]:
    labels = {int(r.datapoint_id): (str(r.label), str(r.unit)) for r in evaluation.fleet.datapoints.itertuples()}
    out = []
    for r in evaluation.outcomes[c.STUCK.name].failures.itertuples():
        label, unit = labels.get(int(r.datapoint_id), ("?", ""))
        out.append(
            {
                "device_id": int(r.device_id),
                "device_name": names.get(int(r.device_id)),
                "datapoint_id": int(r.datapoint_id),
                "label": label,
                "unit": unit,
                "value": _num(r.value, 6),
                "start": _iso(r.run_start),
                "end": _iso(r.run_end),
                "duration_s": _num(r.run_s, 1),
                "samples": int(r.samples),
            }
        )
    return out


def _future(evaluation: WindowEvaluation, names: dict[int, str]) -> dict[str, Any]:
    failures = evaluation.outcomes[c.READINGS.name].failures
    future = failures if failures.empty else failures[failures[c.FAILED_CHECKS].str.contains(FUTURE_CHECK, regex=False)]
    by_device = []
    for device_id, rows in future.groupby("device_id"):
        by_device.append(
            {
                "device_id": int(device_id),
                "device_name": names.get(int(device_id)),
                "count": len(rows),
                "first": _iso(rows["timestamp"].min()),
                "last": _iso(rows["timestamp"].max()),
            }
        )
    beyond = evaluation.suspect_totals.get("future", 0)
    return {
        "total": len(future),
        # Everything stamped after as_of (tolerated ones included); the page lists at most the fetch limit.
        "candidates_after_as_of": int(beyond),
        "tolerance_s": evaluation.settings.future_tolerance_s,
        "by_device": by_device,
        "sample": c.records(future.drop(columns=[c.FAILED_CHECKS]).head(evaluation.settings.sample_rows)),
    }


def _dead_letters(counts: DeadLetterCounts | None, error: str | None, hours: list[datetime]) -> dict[str, Any]:
    if counts is None:
        return {"available": False, "error": error, "complete": False, "total": 0, "by_reason": {}, "by_hour": []}
    by_hour = []
    for hour in hours:
        row = {reason: n for (h, reason), n in counts.by_hour_reason.items() if h == hour}
        by_hour.append({"hour": _iso(hour), "counts": dict(sorted(row.items()))})
    return {
        "available": True,
        "error": error,
        "complete": counts.complete,
        "total": counts.total,
        "by_reason": counts.by_reason(),
        "by_hour": by_hour,
    }


def _summary(report: dict[str, Any], outcomes: dict[str, c.CheckOutcome]) -> dict[str, Any]:
    failed = [o for o in outcomes.values() if not o.passed]
    return {
        "devices": report["scope"]["periodic_devices"],
        "readings": sum(d["readings"] for d in report["devices"]),
        "silent_devices": len(report["silent_devices"]),
        "no_data_devices": len(report["no_data_devices"]),
        "low_completeness_hours": len(report["completeness"]["low_hours"]),
        "gaps": len(report["gaps"]),
        "stuck_series": len(report["stuck"]),
        "out_of_range_readings": report["out_of_range"]["total"],
        "future_readings": report["future_readings"]["total"],
        "non_finite_readings": report["non_finite_readings"]["total"],
        "readings_without_value": report["readings_without_value"]["total"],
        "dead_letters": report["dead_letters"]["total"],
        "failed_checks": [o.name for o in failed],
        "blocking_failures": [o.name for o in failed if o.severity is c.Severity.ERROR],
    }


def markdown_summary(report: dict[str, Any]) -> str:
    """A short Markdown summary for the Dagster UI."""
    s = report["summary"]
    lines = [
        f"**Data quality {report['day']}**: {s['devices']} periodic devices, {s['readings']} readings.",
        "",
        "| check | severity | result | failures |",
        "|---|---|---|---|",
    ]
    for check in report["checks"]:
        result = "passed" if check["passed"] else "**failed**"
        lines.append(f"| {check['name']} | {check['severity']} | {result} | {check['failure_count']} |")
    lines += [
        "",
        f"- silent devices: {s['silent_devices']}; no data: {s['no_data_devices']}",
        f"- out-of-range readings: {s['out_of_range_readings']}; from the future: {s['future_readings']}",
        f"- gaps: {s['gaps']}; stuck series: {s['stuck_series']}; incomplete hours: {s['low_completeness_hours']}",
        f"- readings without a value: {s['readings_without_value']}",
        f"- dead letters: {s['dead_letters']}"
        + ("" if report["dead_letters"]["available"] else f" (unavailable: {report['dead_letters']['error']})"),
    ]
    if "events" in report:
        lines.append(
            f"- events: {s['events']}; access attempts: {s['access_attempts']}; doors held open: "
            f"{s['doors_held_open']}; presence outages: {s['presence_outages']}"
        )
    return "\n".join(lines)
