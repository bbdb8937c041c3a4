"""The simulator's clock: live, or a replay of past hours.

Live (`f2 simulate`): frames fall due on the monotonic clock and carry the wall clock as their device time.
Replay (`f2 simulate --history 24h`): device time runs from a start to an end in the past; nothing waits for
a frame to fall due, so the window is sent as fast as the rate allows (the demo's history: 24 h of the sample
fleet in well under a minute) and each frame carries exactly the device time it was due at.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Pacer:
    """At most `rate` messages per second of real time (None: no limit)."""

    rate: float | None
    began: float = field(default_factory=time.monotonic)

    def pace(self, published: int, stop: threading.Event) -> None:
        if self.rate is None:
            return
        ahead = published / self.rate - (time.monotonic() - self.began)
        if ahead > 0:
            stop.wait(ahead)


@dataclass
class LiveTime:
    """Frames due on the monotonic clock; device time is the wall clock; optionally stop after `duration_s`."""

    duration_s: float | None = None
    rate: float | None = None

    def begin(self) -> float:
        """Called once every controller is connected: the time of the first frame."""
        self.start = time.monotonic()
        self.pacer = Pacer(self.rate)
        return self.start

    def now(self) -> float:
        return time.monotonic()

    def finished(self, now: float) -> bool:
        return self.duration_s is not None and now - self.start >= self.duration_s

    def wait_until(self, due: float, stop: threading.Event) -> None:
        stop.wait(min(due - self.now(), 0.5))

    def device_us(self, due: float) -> int | None:
        """None: the endpoint stamps the wall clock when it builds the message."""
        return None


@dataclass
class ReplayTime:
    """Device time from `start_s` to `end_s` (Unix seconds, end excluded), as fast as `rate` allows."""

    start_s: float
    end_s: float
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.end_s <= self.start_s:
            raise ValueError(f"replay window ends ({self.end_s}) before it starts ({self.start_s})")
        self._now = self.start_s

    def begin(self) -> float:
        self._now = self.start_s
        self.pacer = Pacer(self.rate)
        return self.start_s

    def now(self) -> float:
        return self._now

    def finished(self, now: float) -> bool:
        return now >= self.end_s

    def wait_until(self, due: float, stop: threading.Event) -> None:
        self._now = due  # nothing to wait for: the next frame's device time is simply the present

    def device_us(self, due: float) -> int | None:
        return round(due * 1_000_000)


TimeBase = LiveTime | ReplayTime
