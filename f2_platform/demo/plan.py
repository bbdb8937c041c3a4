"""What the demo's history covers (pure): the window of past device time to replay, the Dagster partitions
that hold it, and the record of a load kept in the state folder so a second `make demo` loads nothing again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Less than this left to load (the store already holds readings right after the window's start): nothing.
MIN_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class HistoryWindow:
    """Past device time [start, end) to replay, UTC."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def plan_window(
    now: datetime, length: timedelta, end: datetime | None = None, first_stored: datetime | None = None
) -> HistoryWindow | None:
    """[end - length, end), `end` defaulting to now, cut short before `first_stored`, the first reading the
    store already holds at or after the start (a demo that ran before without history: its readings stay, and
    history fills the time before them). None when less than MIN_WINDOW is left."""
    end = min(end or now, now)
    start = end - length
    if first_stored is not None and start <= first_stored < end:
        end = first_stored
    if end - start < MIN_WINDOW:
        return None
    return HistoryWindow(start.astimezone(UTC), end.astimezone(UTC))


def first_day(record: HistoryRecord | None, now: datetime, length: timedelta, end: datetime | None) -> date:
    """The day the history starts (the one recorded, else the one a load now would start): the demo's first
    partition, so the UI shows the loaded days rather than every hour since the default start."""
    if record is not None:
        return record.window.start.date()
    return (min(end or now, now) - length).astimezone(UTC).date()


@dataclass(frozen=True)
class HistoryPartitions:
    """The partitions the window's readings fall in that exist at `now` (complete windows only): hourly ones of
    readings_hourly, daily ones of readings_daily and of the data-quality report."""

    hourly: list[str]
    daily: list[str]


def partitions_of(window: HistoryWindow, now: datetime) -> HistoryPartitions:
    # Imported here: the partitions are defined from F2_DAGSTER_PARTITIONS_START when first imported, which
    # `f2 demo up` sets from the history (first_day) before anything imports them.
    from f2_platform.partitions import daily_partitions, hourly_partitions, keys_overlapping

    return HistoryPartitions(
        hourly=keys_overlapping(hourly_partitions, HOUR, window.start, window.end, now),
        daily=keys_overlapping(daily_partitions, DAY, window.start, window.end, now),
    )


@dataclass
class HistoryRecord:
    """$F2_STATE_DIR/demo/history.json: the window loaded, what the broker acknowledged and the ledger
    reconciled, and (once done) what was materialized in Dagster."""

    start: str
    end: str
    ledger: str
    messages: int = 0
    readings: int = 0
    events: int = 0  # of the doors, buttons, motion sensors, strikes, sirens and readers
    reconciled: bool = False
    materialized: dict[str, Any] | None = None
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def window(self) -> HistoryWindow:
        return HistoryWindow(datetime.fromisoformat(self.start), datetime.fromisoformat(self.end))

    @staticmethod
    def of(window: HistoryWindow, ledger: Path) -> HistoryRecord:
        return HistoryRecord(window.start.isoformat(), window.end.isoformat(), str(ledger))


def record_path(state_dir: Path) -> Path:
    return state_dir / "demo" / "history.json"


def read_record(state_dir: Path) -> HistoryRecord | None:
    path = record_path(state_dir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return HistoryRecord(**{k: v for k, v in data.items() if k in HistoryRecord.__dataclass_fields__})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a history record ({exc}): delete it to load the history again") from None


def write_record(state_dir: Path, record: HistoryRecord) -> None:
    path = record_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    tmp.replace(path)
