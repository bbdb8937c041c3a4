"""Recomputing one window of the event aggregates (both tables of a level) in one transaction: what a
partition run does. Same SQL on both editions (timeseries migration 0007)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg

from f2_platform.defs.resources import TimescaleResource
from f2_platform.timeseries import event_aggregate_sql as q
from f2_platform.timeseries.aggregate_sql import CONSUME_INVALIDATIONS_IN_WINDOW


@dataclass
class EventWindowResult:
    level: q.EventLevel
    start: datetime
    end: datetime
    recomputed: bool = True
    count_rows: int = 0
    activity_rows: int = 0
    rows_written: int = 0
    rows_zeroed: int = 0
    # Entries of aggregate_invalidations the run's snapshot saw in its window (late events), now consumed.
    late_writes: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    by_kind_state: list[tuple[str, str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        """Numbers the UI plots across partitions, and the window's events per kind and state as a table."""
        t = self.totals
        metadata: dict[str, Any] = {
            "window_start": dg.MetadataValue.timestamp(self.start),
            "window_end": dg.MetadataValue.timestamp(self.end),
            "dagster/row_count": self.activity_rows,
            "count_rows": self.count_rows,
            "rows_written": self.rows_written,
            "rows_zeroed": self.rows_zeroed,
            "late_writes_consumed": self.late_writes,
            "events": int(t.get("events", 0)),
            "access_attempts": int(t.get("access_attempts", 0)),
            "door_openings": int(t.get("open_count", 0)),
            "door_open_s": float(t.get("open_s", 0.0)),
            "longest_door_open_s": float(t.get("longest_open_s", 0.0)),
            "presence_outages": int(t.get("outages", 0)),
            "presence_outage_s": float(t.get("outage_s", 0.0)),
            "controllers": int(t.get("controllers", 0)),
            "recomputed": self.recomputed,
            "events_by_kind_state": dg.MetadataValue.table(
                records=[dg.TableRecord({"kind": k, "state": s or "-", "events": n}) for k, s, n in self.by_kind_state],
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("kind", "text"),
                        dg.TableColumn("state", "text"),
                        dg.TableColumn("events", "int"),
                    ]
                ),
            ),
            "summary": dg.MetadataValue.md(self.markdown()),
        }
        if self.notes:
            metadata["notes"] = "\n".join(self.notes)
        return metadata

    def markdown(self) -> str:
        t = self.totals
        lines = [
            f"**Events {self.level.name} {self.start.isoformat()}**: {int(t.get('events', 0))} events of "
            f"{int(t.get('controllers', 0))} controllers",
            "",
            "| kind | state | events |",
            "|---|---|---|",
            *(f"| {k} | {s or '-'} | {n} |" for k, s, n in self.by_kind_state),
            "",
            f"- access attempts: {int(t.get('access_attempts', 0))}",
            f"- door openings: {int(t.get('open_count', 0))}, open {float(t.get('open_s', 0.0)):.0f} s in all, "
            f"longest {float(t.get('longest_open_s', 0.0)):.0f} s",
            f"- presence outages: {int(t.get('outages', 0))}, offline {float(t.get('outage_s', 0.0)):.0f} s",
        ]
        return "\n".join(lines)


_TOTALS = ("rows", "events", "access_attempts", "open_count", "open_s", "longest_open_s", "outages", "outage_s")


def maintain_event_window(
    timescale: TimescaleResource, level: q.EventLevel, start: datetime, end: datetime, now: datetime | None = None
) -> EventWindowResult:
    """Recompute both tables of `level` over [start, end) from device_events, in one transaction."""
    result = EventWindowResult(level, start, end)
    until = min(end, now or datetime.now(UTC))
    params = {"start": start, "end": end, "until": until}
    with timescale.connect() as conn:
        watermark = conn.execute(q.EVENTS_WATERMARK).fetchone()
        if watermark is not None and watermark[0] > start:
            # Retention dropped events of this window: recomputing would replace stored aggregates by less.
            result.recomputed = False
            result.notes.append(
                f"events before {watermark[0].isoformat()} were dropped by retention; the stored aggregates "
                "of this window are kept"
            )
        else:
            tables = (level.counts_table, level.activity_table)
            for table in tables:
                conn.execute(q.LOCK, {"table": table})
            try:
                _recompute(conn, level, params, result)
            finally:
                for table in reversed(tables):
                    conn.execute(q.UNLOCK, {"table": table})
        row = conn.execute(q.window_totals(level), params).fetchone()
        if row is not None:
            result.activity_rows = int(row[0])
            result.totals = {name: float(value) for name, value in zip(_TOTALS, row[:8], strict=True)}
            result.totals["controllers"] = float(row[8])
        counts = conn.execute(q.window_counts(level), params).fetchall()
        result.by_kind_state = [(str(k), str(s), int(n)) for k, s, n, _ in counts]
        result.count_rows = sum(int(rows) for *_, rows in counts)
    return result


def _recompute(
    conn: psycopg.Connection, level: q.EventLevel, params: dict[str, Any], result: EventWindowResult
) -> None:
    with conn.transaction():
        # One snapshot for reading the events, writing both tables and consuming the window's late writes.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(q.FRESH_COUNTS, params)
        conn.execute(q.FRESH_ACTIVITY, params)
        for table, fresh, columns, key, metrics in (
            (level.counts_table, "fresh_counts", q.COUNT_COLUMNS, q.COUNT_KEY, ("events",)),
            (level.activity_table, "fresh_activity", q.ACTIVITY_COLUMNS, q.ACTIVITY_KEY, q.ACTIVITY_METRICS),
        ):
            result.rows_written += conn.execute(q.upsert(table, fresh, columns, key), params).rowcount
            result.rows_zeroed += conn.execute(q.zero_missing(table, fresh, key, metrics), params).rowcount
        # What late events logged in the window up to this snapshot is now in the tables; what a transaction
        # logs after it stays for the late-data sensor.
        result.late_writes = conn.execute(
            CONSUME_INVALIDATIONS_IN_WINDOW, {**params, "aggregate": level.aggregate}
        ).rowcount


def maintain_event_range(
    timescale: TimescaleResource, level: q.EventLevel, start: datetime, end: datetime, now: datetime | None = None
) -> EventWindowResult:
    """Every bucket of [start, end) (a range backfill is one run), each in its own transaction; the result
    adds them up (the longest open run is the longest of any bucket)."""
    total = EventWindowResult(level, start, end)
    by_kind_state: dict[tuple[str, str], int] = {}
    cursor = start
    while cursor < end:
        one = maintain_event_window(timescale, level, cursor, min(cursor + level.bucket, end), now)
        total.recomputed = total.recomputed and one.recomputed
        total.count_rows += one.count_rows
        total.activity_rows += one.activity_rows
        total.rows_written += one.rows_written
        total.rows_zeroed += one.rows_zeroed
        total.late_writes += one.late_writes
        total.notes += one.notes
        for name, value in one.totals.items():
            if name == "longest_open_s":
                total.totals[name] = max(total.totals.get(name, 0.0), value)
            elif name != "controllers":
                total.totals[name] = total.totals.get(name, 0.0) + value
        total.totals["controllers"] = max(total.totals.get("controllers", 0.0), one.totals.get("controllers", 0.0))
        for kind, state, n in one.by_kind_state:
            by_kind_state[(kind, state)] = by_kind_state.get((kind, state), 0) + n
        cursor += level.bucket
    total.by_kind_state = [(k, s, n) for (k, s), n in sorted(by_kind_state.items())]
    return total
