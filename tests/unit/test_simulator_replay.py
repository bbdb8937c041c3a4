"""The simulator's replay clock (`f2 simulate --history`): device times step through the past window exactly,
the window's end is excluded, nothing waits for a frame to fall due, and the rate limit holds; and the
command-line durations and moments it is given."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from f2_platform.cli.params import parse_duration, parse_moment
from simulator.timebase import LiveTime, Pacer, ReplayTime


def test_replay_device_times_are_the_due_times_of_the_window() -> None:
    start = datetime(2026, 1, 1, 21, tzinfo=UTC).timestamp()
    clock = ReplayTime(start, start + 90, rate=None)
    assert clock.begin() == start
    seen = []
    due = start
    stop = threading.Event()
    began = time.monotonic()
    while not clock.finished(clock.now()):
        seen.append(clock.device_us(due))
        due += 30
        clock.wait_until(due, stop)
    # 21:00:00, 21:00:30, 21:01:00; 21:01:30 is the end, excluded; and no real time passed waiting.
    assert seen == [round((start + s) * 1_000_000) for s in (0, 30, 60)]
    assert time.monotonic() - began < 1.0


def test_replay_window_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="ends"):
        ReplayTime(100.0, 100.0)


def test_live_clock_leaves_device_time_to_the_wall_clock() -> None:
    clock = LiveTime(duration_s=0.2)
    start = clock.begin()
    assert clock.device_us(start) is None
    assert not clock.finished(start)
    assert clock.finished(start + 0.25)


def test_pacer_keeps_to_its_rate() -> None:
    pacer = Pacer(rate=100.0)
    stop = threading.Event()
    began = time.monotonic()
    for published in range(1, 21):
        pacer.pace(published, stop)
    # 20 messages at 100/s take at least 0.2 s.
    assert time.monotonic() - began >= 0.19


def test_durations_and_moments() -> None:
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("3600") == timedelta(hours=1)
    assert parse_duration("1.5d") == timedelta(hours=36)
    for bad in ("", "h", "-3h", "0s", "3 weeks"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert parse_moment("2026-01-02T00:00Z") == datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_moment("2026-01-02 01:30") == datetime(2026, 1, 2, 1, 30, tzinfo=UTC)
    assert parse_moment("2026-01-02T02:00+01:00") == datetime(2026, 1, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_moment("yesterday")
