"""The time a check looks at: a window of readings and the moment it is evaluated at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class CheckWindow:
    """Readings in [start, end), judged at `as_of` (normally now).

    A window in the past is judged as it stood at its end: a device is silent if it was silent when the
    window closed. Readings stamped after `as_of` (plus a tolerance) are from the future whatever the window.
    """

    start: datetime
    end: datetime
    as_of: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end", "as_of"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start.isoformat()} .. {self.end.isoformat()}")

    @property
    def observed_end(self) -> datetime:
        """Where the window's observation stops: its end, or `as_of` for a window still open."""
        return min(self.end, max(self.as_of, self.start))

    @classmethod
    def of_day(cls, day: date, as_of: datetime | None = None) -> CheckWindow:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(start, start + DAY, as_of or datetime.now(UTC))

    @classmethod
    def recent(cls, span: timedelta, as_of: datetime | None = None) -> CheckWindow:
        moment = as_of or datetime.now(UTC)
        return cls(moment - span, moment, moment)

    def hours(self) -> list[datetime]:
        """Starts of the UTC hours overlapping the window."""
        first = self.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        hours = []
        cursor = first
        while cursor < self.end:
            hours.append(cursor)
            cursor += HOUR
        return hours

    def label(self) -> str:
        return f"{self.start.astimezone(UTC).isoformat()} .. {self.end.astimezone(UTC).isoformat()}"
