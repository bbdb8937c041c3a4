"""What a reprocessing run covers: a time window and a device set, and the aggregate partitions it affects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from f2_platform.partitions import daily_partitions, hourly_partitions, keys_overlapping
from f2_platform.timeseries.aggregate_sql import DAILY, HOURLY

OP_NAME = "reprocess_raw_window"


class ReprocessConfig(dg.Config):
    start: str = Field(description="Window start, RFC 3339, inclusive (device time), e.g. 2026-11-27T10:00:00Z")
    end: str = Field(description="Window end, RFC 3339, exclusive")
    device_ids: list[int] = Field(description="Wired devices (registry deviceid) whose readings are re-decoded")
    clock_skew_minutes: int = Field(
        default=10,
        description="Raw records are located by their Kafka timestamp (when the bridge received them); "
        "records "
        "received up to this long before the window start are read too, for devices whose clock runs ahead.",
    )


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    device_ids: frozenset[int]

    @property
    def start_us(self) -> int:
        return _us(self.start)

    @property
    def end_us(self) -> int:
        return _us(self.end)

    def hourly_keys(self, now: datetime | None = None) -> list[str]:
        return keys_overlapping(hourly_partitions, HOURLY.bucket, self.start, self.end, now)

    def daily_keys(self, now: datetime | None = None) -> list[str]:
        return keys_overlapping(daily_partitions, DAILY.bucket, self.start, self.end, now)


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def parse_instant(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an RFC 3339 instant such as 2026-11-27T10:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} {text!r} has no time zone; write it in UTC with a trailing Z")
    return moment.astimezone(UTC)


def window_from_config(start: str, end: str, device_ids: list[int]) -> Window:
    window = Window(parse_instant(start, "start"), parse_instant(end, "end"), frozenset(device_ids))
    if window.start >= window.end:
        raise ValueError(f"start {start} is not before end {end}")
    if not window.device_ids:
        raise ValueError("device_ids is empty; name the devices whose readings need re-decoding")
    return window
