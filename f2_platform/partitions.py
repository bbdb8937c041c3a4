"""The aggregate partitions, defined once: hourly and daily windows in UTC, from F2_DAGSTER_PARTITIONS_START.

`end_offset=0`: the newest partition is the last complete window, so a scheduled run never aggregates an
hour that is still receiving readings (the native edition's real-time views cover that one).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from f2_platform.settings import DagsterSettings

HOURLY_FORMAT = "%Y-%m-%d-%H:%M"
DAILY_FORMAT = "%Y-%m-%d"


def _start() -> datetime:
    day = DagsterSettings().partitions_start
    return datetime(day.year, day.month, day.day)


hourly_partitions = dg.HourlyPartitionsDefinition(start_date=_start(), timezone="UTC", end_offset=0)
daily_partitions = dg.DailyPartitionsDefinition(start_date=_start(), timezone="UTC", end_offset=0)


def bucket_floor(moment: datetime, width: timedelta) -> datetime:
    """Start of the UTC bucket holding `moment` (hours and days are fixed widths in UTC)."""
    seconds = int(width.total_seconds())
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def keys_overlapping(
    partitions_def: dg.TimeWindowPartitionsDefinition,
    width: timedelta,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[str]:
    """Keys of the partitions (each `width` wide) whose window overlaps [start, end), limited to the
    partitions that exist at `now`."""
    first = max(bucket_floor(start, width), partitions_def.start.astimezone(UTC))
    # end_offset=0: the newest partition is the last complete window.
    newest_end = bucket_floor(now or datetime.now(UTC), width)
    keys = []
    cursor = first
    while cursor < end and cursor + width <= newest_end:
        keys.append(cursor.strftime(partitions_def.fmt))
        cursor += width
    return keys


def window_of_key(partitions_def: dg.TimeWindowPartitionsDefinition, key: str) -> tuple[datetime, datetime]:
    window = partitions_def.time_window_for_partition_key(key)
    return window.start.astimezone(UTC), window.end.astimezone(UTC)
