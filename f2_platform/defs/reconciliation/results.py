"""The reconciliation's results: the table reconciliation_results (timeseries migration 0008), one row per
hour and controller, replaced by each run of the hour; and their Dagster metadata."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import dagster as dg

from f2_platform.defs.resources import TimescaleResource
from f2_platform.reconciliation.model import ControllerResult, Difference

_COUNT_COLUMNS = (
    "bridge_counted",
    "raw_records",
    "stored",
    "dead_lettered",
    "ignored",
    "readings_expected",
    "readings_in_f2_decoded",
    "readings_stored",
    "events_expected",
    "events_in_f2_events",
    "events_stored",
    "rescuable",
    "differences",
)
# Columns in _COUNT_COLUMNS' order.
_INSERT = """
INSERT INTO reconciliation_results (hour, controller_mac, passed, bridge_counted, raw_records, stored,
    dead_lettered, ignored, readings_expected, readings_in_f2_decoded, readings_stored, events_expected,
    events_in_f2_events, events_stored, rescuable, differences, dead_letters_by_reason, difference_list,
    registry_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)
"""


def listed_differences(results: dict[str, ControllerResult], limit: int) -> list[Difference]:
    """At most `limit` differences, taken in turn from each controller that has some: one controller's flood
    (a fleet that never went through a bridge, say) hides no other controller's differences."""
    queues = [iter(r.differences) for r in results.values() if r.differences]
    out: list[Difference] = []
    while queues and len(out) < limit:
        still = []
        for queue in queues:
            difference = next(queue, None)
            if difference is None:
                continue
            out.append(difference)
            still.append(queue)
            if len(out) == limit:
                break
        queues = still
    return out


def write_results(
    timescale: TimescaleResource,
    hour_start: datetime,
    results: dict[str, ControllerResult],
    registry_version: int | None,
    limit: int,
) -> None:
    """Replaces the hour's rows in one transaction; each controller's row lists at most `limit` differences (a
    limit per hour would let the controllers listed first use it up and show the others' as none)."""
    with timescale.connect(autocommit=False) as conn:
        conn.execute("DELETE FROM reconciliation_results WHERE hour = %s", (hour_start,))
        for controller, result in results.items():
            counts = result.counts()
            listed = [d.row() for d in result.differences[:limit]]
            conn.execute(
                _INSERT,
                (
                    hour_start,
                    controller,
                    result.passed,
                    *(counts[c] for c in _COUNT_COLUMNS),
                    json.dumps(counts["dead_letters_by_reason"]),
                    json.dumps(listed, default=str),
                    registry_version,
                ),
            )


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=str)


def counts_table(results: dict[str, ControllerResult]) -> dg.TableMetadataValue:
    rows = [r.counts() for r in results.values()]
    columns = ["controller", *_COUNT_COLUMNS[:-2], "dead_letters_by_reason", "rescuable", "differences"]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: _cell(row[c]) for c in columns}) for row in rows],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(c, "string" if c in ("controller", "dead_letters_by_reason") else "int") for c in columns
            ]
        ),
    )


def differences_table(differences: list[Difference]) -> dg.TableMetadataValue:
    columns = ("controller", "mqtt_topic", "partition", "offset", "kind", "detail")
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: _cell(d.row()[c]) for c in columns}) for d in differences],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(c, "int" if c in ("partition", "offset") else "string") for c in columns]
        ),
    )
