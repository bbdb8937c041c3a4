"""Retention: dropping whole chunks outside each hypertable's window, with drop_chunks (both editions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from f2_platform.timeseries import storage_sql as s
from f2_platform.timeseries.policy import RAW_RETENTION, RetentionPolicy


@dataclass(frozen=True)
class Chunk:
    name: str
    range_start: datetime
    range_end: datetime


@dataclass
class RetentionReport:
    policy: RetentionPolicy
    cutoff: datetime
    dropped: list[Chunk] = field(default_factory=list)
    kept: int = 0


def list_chunks(conn: psycopg.Connection, name: str) -> list[Chunk]:
    return [
        Chunk(f"{schema}.{chunk}", start, end)
        for schema, chunk, start, end, _ in conn.execute(s.CHUNKS, {"name": name}).fetchall()
    ]


def apply_retention(conn: psycopg.Connection, policy: RetentionPolicy, now: datetime) -> RetentionReport:
    """Drops the chunks of `policy.hypertable` that end at or before now - keep; returns what it dropped."""
    report = RetentionReport(policy, now - policy.keep)
    before = list_chunks(conn, policy.hypertable)
    if not before:
        return report
    with conn.transaction():
        dropped_names = {
            str(name)
            for (name,) in conn.execute(s.DROP_CHUNKS, {"name": policy.hypertable, "cutoff": report.cutoff}).fetchall()
        }
        report.dropped = [chunk for chunk in before if chunk.name in dropped_names]
        report.kept = len(before) - len(report.dropped)
        if report.dropped:
            # Recorded in the same transaction as the drop: aggregates never recompute a window whose
            # readings are gone (see aggregates/maintenance.py).
            dropped_before = max(chunk.range_end for chunk in report.dropped)
            conn.execute(s.RECORD_WATERMARK, {"name": policy.hypertable, "dropped_before": dropped_before})
            if policy.hypertable == RAW_RETENTION.hypertable:
                conn.execute(s.PRUNE_INVALIDATIONS, {"before": dropped_before})
    return report
