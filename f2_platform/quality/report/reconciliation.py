"""The report's section on the day's hourly reconciliation (reconciliation_results, written by the
hourly_reconciliation asset): hours reconciled and failed, what the hops held, dead letters by reason, and
each failed hour and controller. The report only reads the results; it never runs the reconciliation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from f2_platform.quality.window import CheckWindow

FAILED_LISTED = 50

RESULTS_OF_DAY = """
SELECT hour, controller_mac, passed, bridge_counted, raw_records, stored, dead_lettered, ignored, readings_stored,
       events_stored, dead_letters_by_reason, rescuable, differences, registry_version
FROM reconciliation_results
WHERE hour >= %(start)s AND hour < %(end)s
  AND (%(macs)s::text[] IS NULL OR controller_mac = ANY(%(macs)s::text[]))
ORDER BY hour, controller_mac
"""
_SUMMED = ("bridge_counted", "raw_records", "stored", "dead_lettered", "ignored", "readings_stored", "events_stored",
           "rescuable", "differences")  # fmt: skip


class FetchAll(Protocol):
    def fetch_all(self, query: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...


def build_reconciliation_section(
    ts: FetchAll, window: CheckWindow, controllers: Sequence[str] | None
) -> dict[str, Any]:
    """The day's reconciliation section of the report (JSON-ready)."""
    macs = sorted({m.lower() for m in controllers}) if controllers else None
    rows = ts.fetch_all(RESULTS_OF_DAY, {"start": window.start, "end": window.end, "macs": macs})
    reasons: Counter[str] = Counter()
    for row in rows:
        reasons.update(row["dead_letters_by_reason"] or {})
    failed = [row for row in rows if not row["passed"]]
    return {
        "hours_reconciled": len({row["hour"] for row in rows}),
        "hours_failed": len({row["hour"] for row in failed}),
        **{name: sum(int(row[name]) for row in rows) for name in _SUMMED},
        "dead_letters_by_reason": dict(sorted(reasons.items())),
        "registry_versions": sorted(
            {int(row["registry_version"]) for row in rows if row["registry_version"] is not None}
        ),
        "failed": [
            {
                "hour": row["hour"].isoformat(),
                "controller": row["controller_mac"],
                "raw_records": int(row["raw_records"]),
                "differences": int(row["differences"]),
            }
            for row in failed[:FAILED_LISTED]
        ],
    }


def summary_of(section: dict[str, Any]) -> dict[str, int]:
    return {
        "reconciliation_failed_hours": section["hours_failed"],
        "reconciliation_differences": section["differences"],
    }
