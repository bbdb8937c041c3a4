"""Recomputing one window of an aggregate, on either edition; what a partition run does."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
import psycopg

from f2_platform.defs.resources import TimescaleResource
from f2_platform.partitions import bucket_floor
from f2_platform.timeseries import aggregate_sql as q
from f2_platform.timeseries.edition import Edition, detect_edition
from f2_platform.timeseries.policy import RAW_RETENTION

# Serialises recomputations of the same aggregate: two runs deleting the same invalidations would
# otherwise fail each other's repeatable-read transactions.
_LOCK = "SELECT pg_advisory_lock(hashtext('f2-aggregate'), hashtext(%(aggregate)s))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext('f2-aggregate'), hashtext(%(aggregate)s))"


class AggregateStateError(RuntimeError):
    """The database holds something the edition's implementation cannot maintain."""


@dataclass
class WindowResult:
    spec: q.AggregateSpec
    start: datetime
    end: datetime
    edition: Edition
    recomputed_from: datetime | None = None
    rows: int = 0
    series: int = 0
    samples: int = 0
    invalidations_consumed: int = 0
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        metadata: dict[str, object] = {
            "window_start": dg.MetadataValue.timestamp(self.start),
            "window_end": dg.MetadataValue.timestamp(self.end),
            "edition": self.edition.value,
            "implementation": "continuous aggregate" if self.edition.has_native_aggregates else "rollup hypertable",
            "rows": self.rows,
            "series": self.series,
            "samples": self.samples,
            "invalidations_consumed": self.invalidations_consumed,
            "recomputed": self.recomputed_from is not None,
        }
        if self.notes:
            metadata["notes"] = "\n".join(self.notes)
        return metadata


def raw_watermark(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(q.RAW_RETENTION_WATERMARK, {"hypertable": RAW_RETENTION.hypertable}).fetchone()
    return row[0] if row else None


def recomputable_start(spec: q.AggregateSpec, start: datetime, watermark: datetime | None) -> datetime:
    """First bucket at or after `start` whose raw readings retention has not dropped (pure)."""
    if watermark is None or watermark <= start:
        return start
    floor = bucket_floor(watermark, spec.bucket)
    return floor if floor == watermark else floor + spec.bucket


def maintain_window(
    timescale: TimescaleResource, spec: q.AggregateSpec, start: datetime, end: datetime
) -> WindowResult:
    """Recompute `spec` over [start, end) from the readings, consuming the invalidations it saw."""
    with timescale.connect() as conn:
        edition = detect_edition(conn)
        result = WindowResult(spec, start, end, edition)
        first = recomputable_start(spec, start, raw_watermark(conn))
        if first > start:
            # Raw readings before `first` were dropped by retention: recomputing would replace stored
            # aggregates by nothing, so they stay as they are.
            result.notes.append(
                f"raw readings before {first.isoformat()} were dropped by retention; "
                "the stored aggregates of that part of the window are kept"
            )
        if first < end:
            result.recomputed_from = first
            if edition.has_native_aggregates:
                ensure_continuous_aggregates(conn)
                result.invalidations_consumed = _refresh_native(conn, spec, first, end)
            else:
                _require_rollup_table(conn, spec)
                result.invalidations_consumed = _recompute_rollup(conn, spec, first, end)
        rows, series, samples = conn.execute(q.window_summary(spec), {"start": start, "end": end}).fetchone() or (
            0,
            0,
            0,
        )
        result.rows, result.series, result.samples = int(rows), int(series), int(samples)
    return result


def _sub_windows(spec: q.AggregateSpec, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    windows = []
    cursor = start
    while cursor < end:
        windows.append((cursor, min(cursor + spec.step, end)))
        cursor += spec.step
    return windows


def _recompute_rollup(conn: psycopg.Connection, spec: q.AggregateSpec, start: datetime, end: datetime) -> int:
    consumed = 0
    for sub_start, sub_end in _sub_windows(spec, start, end):
        params = {"aggregate": spec.name, "start": sub_start, "end": sub_end}
        conn.execute(_LOCK, params)
        try:
            with conn.transaction():
                # One snapshot for reading the readings and deleting the invalidations: an invalidation
                # committed after it stays, and so does the window's staleness.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                conn.execute(q.rollup_delete(spec), params)
                conn.execute(q.rollup_insert(spec), params)
                consumed += conn.execute(q.CONSUME_INVALIDATIONS_IN_WINDOW, params).rowcount
        finally:
            conn.execute(_UNLOCK, params)
    return consumed


def _refresh_native(conn: psycopg.Connection, spec: q.AggregateSpec, start: datetime, end: datetime) -> int:
    params = {"aggregate": spec.name, "start": start, "end": end}
    conn.execute(_LOCK, params)
    try:
        # refresh_continuous_aggregate cannot run inside a transaction, so the invalidations are read
        # before it: every write they stand for is visible to the refresh that follows, and only those
        # are deleted.
        seen = [xact for _, xact in conn.execute(q.INVALIDATIONS_IN_WINDOW, params).fetchall()]
        if spec.native_source != q.RAW_TABLE:
            # The daily level reads the hourly one: bring the hourly level up to date over the same window.
            conn.execute(q.cagg_refresh(q.BY_NAME[spec.native_source]), params)
        conn.execute(q.cagg_refresh(spec), params)
        if not seen:
            return 0
        return conn.execute(q.CONSUME_INVALIDATIONS_SEEN, {**params, "xacts": seen}).rowcount
    finally:
        conn.execute(_UNLOCK, params)


_RELKIND = "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(%(name)s)"


def _relkind(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute(_RELKIND, {"name": name}).fetchone()
    return str(row[0]) if row else None


def ensure_continuous_aggregates(conn: psycopg.Connection) -> None:
    """Creates the continuous aggregates if missing (idempotent) and keeps their real-time views on."""
    for spec in q.AGGREGATES:
        kind = _relkind(conn, spec.name)
        if kind == "r":
            raise AggregateStateError(
                f"{spec.name} is a plain table (created while the database ran the Apache edition); "
                "rename or "
                "drop it so that the continuous aggregate can take its name, then rerun"
            )
        if kind is None:
            conn.execute(q.cagg_create(spec))
        conn.execute(q.cagg_realtime(spec))


def _require_rollup_table(conn: psycopg.Connection, spec: q.AggregateSpec) -> None:
    if _relkind(conn, spec.name) != "r":
        raise AggregateStateError(
            f"{spec.name} does not exist as a table; apply the timeseries migrations (`f2 db migrate`)"
        )
