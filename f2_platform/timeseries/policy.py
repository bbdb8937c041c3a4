"""Desired storage settings of the time-series store, declared in one place.

The storage-policy assets reconcile the database to these values and report any drift; change a number
here and the next scheduled run applies it. Nothing else in the platform states these durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from f2_platform.timeseries.aggregate_sql import DAILY, HOURLY, RAW_TABLE


@dataclass(frozen=True)
class CompressionPolicy:
    hypertable: str
    compress_after: timedelta
    segment_by: tuple[str, ...]
    order_by: str


@dataclass(frozen=True)
class RetentionPolicy:
    hypertable: str
    keep: timedelta


COMPRESSION = CompressionPolicy(
    hypertable=RAW_TABLE,
    # Late readings still arrive for a few days (controllers flushing their buffers); compressed chunks
    # accept them, but at the cost of decompressing a segment, so only settled days are compressed.
    compress_after=timedelta(days=7),
    # Queries read one device's series: segmenting by device keeps each series in its own segments.
    segment_by=("device_id",),
    order_by='"timestamp" DESC',
)

RAW_RETENTION = RetentionPolicy(RAW_TABLE, keep=timedelta(days=90))
# Aggregates outlive the readings they summarise: analysts keep trends long after raw readings are gone.
RETENTION: tuple[RetentionPolicy, ...] = (
    RAW_RETENTION,
    RetentionPolicy(HOURLY.name, keep=timedelta(days=2 * 365)),
    RetentionPolicy(DAILY.name, keep=timedelta(days=10 * 365)),
)


def check_policies() -> list[str]:
    """Inconsistencies between the declared policies (empty when they make sense together)."""
    problems = []
    for policy in RETENTION:
        if policy.keep <= timedelta(0):
            problems.append(f"{policy.hypertable}: retention must be positive")
        if policy.hypertable != RAW_TABLE and policy.keep < RAW_RETENTION.keep:
            problems.append(f"{policy.hypertable}: aggregates must be kept at least as long as raw readings")
    if COMPRESSION.compress_after >= RAW_RETENTION.keep:
        problems.append("compression after the retention window never compresses anything")
    return problems
