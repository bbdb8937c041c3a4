"""The demo's history plan and guide, without servers: which window is replayed (cut short before readings the
store already holds), which partitions hold it, the record a second `make demo` reads, and the commands the
demo prints (the activation first, then the exports a new shell needs to find a stack off its defaults)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from f2_platform.demo.guide import PROMPT, DemoEndpoints, commands, guide, stack_exports
from f2_platform.demo.plan import (
    HistoryRecord,
    HistoryWindow,
    first_day,
    partitions_of,
    plan_window,
    read_record,
    write_record,
)
from f2_platform.settings import StackSettings

NOW = datetime(2026, 3, 10, 14, 25, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_the_window_is_the_last_hours_before_now() -> None:
    assert plan_window(NOW, DAY) == HistoryWindow(NOW - DAY, NOW)
    end = datetime(2026, 3, 10, tzinfo=UTC)
    assert plan_window(NOW, timedelta(hours=3), end) == HistoryWindow(end - timedelta(hours=3), end)
    # An end in the future is now: device times are never ahead of the clock.
    assert plan_window(NOW, DAY, NOW + timedelta(hours=2)) == HistoryWindow(NOW - DAY, NOW)


def test_the_window_stops_where_stored_readings_begin() -> None:
    first = NOW - timedelta(hours=2)
    assert plan_window(NOW, DAY, first_stored=first) == HistoryWindow(NOW - DAY, first)
    # Readings right after the start leave nothing worth loading.
    assert plan_window(NOW, DAY, first_stored=NOW - DAY + timedelta(minutes=2)) is None


def test_partitions_are_the_complete_windows_the_hours_fall_in() -> None:
    window = HistoryWindow(NOW - DAY, NOW)  # 2026-03-09 14:25 to 2026-03-10 14:25
    parts = partitions_of(window, NOW)
    # The first, partial hour included; the hour still running (14:00 on the 10th) is not a partition yet.
    assert parts.hourly[0] == "2026-03-09-14:00" and parts.hourly[-1] == "2026-03-10-13:00"
    assert len(parts.hourly) == 24
    assert parts.daily == ["2026-03-09"]  # the 10th is not complete


def test_first_day_is_the_recorded_one_or_the_one_a_load_would_start(tmp_path: Path) -> None:
    assert first_day(None, NOW, DAY, None) == date(2026, 3, 9)
    assert first_day(None, NOW, timedelta(hours=3), None) == date(2026, 3, 10)
    record = HistoryRecord.of(HistoryWindow(datetime(2026, 3, 1, 22, tzinfo=UTC), NOW), tmp_path / "ledger")
    assert first_day(record, NOW, timedelta(hours=3), None) == date(2026, 3, 1)


def test_the_record_survives_a_round_trip(tmp_path: Path) -> None:
    assert read_record(tmp_path) is None
    record = HistoryRecord.of(HistoryWindow(NOW - DAY, NOW), tmp_path / "demo" / "ledger.jsonl")
    record.messages, record.readings, record.reconciled = 10, 30, True
    write_record(tmp_path, record)
    assert read_record(tmp_path) == record
    (tmp_path / "demo" / "history.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        read_record(tmp_path)


def test_exports_name_only_what_differs_from_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite's own stack runs off the defaults (its ports are in the environment): settings read here must not
    # see them, or every port would differ.
    for name in list(os.environ):
        if name.startswith("F2_STACK_") or name == "F2_STATE_DIR":
            monkeypatch.delenv(name)
    assert stack_exports(StackSettings(state_dir=StackSettings.model_fields["state_dir"].default)) == {}
    exports = stack_exports(StackSettings(state_dir=Path("/tmp/demo"), postgres_port=25432, kafka_heap="256m"))
    assert exports == {"F2_STATE_DIR": "/tmp/demo", "F2_STACK_POSTGRES_PORT": "25432"}


def test_printed_commands_start_with_the_activation() -> None:
    endpoints = DemoEndpoints("127.0.0.1", 9101, 9102, 9103, "http://127.0.0.1:3000", Path("/var/lib/f2/logs"))
    lines = commands(Path("/src/f2/.venv/bin/activate"), {"F2_STATE_DIR": "/tmp/a b"}, endpoints)
    activate, export, env = lines[:3]
    assert activate == "source /src/f2/.venv/bin/activate" and export == "export F2_STATE_DIR='/tmp/a b'"
    assert env == 'eval "$(f2 stack env)"'
    assert any(":9102/metrics" in line for line in lines) and any(":9103/healthz" in line for line in lines)
    text = guide(endpoints, Path("/src/f2/.venv/bin/activate"), {}, [], 5)
    assert next(line for line in text.splitlines() if line.startswith(PROMPT)) == PROMPT + lines[0]
    assert "http://127.0.0.1:3000" in text and "docs/troubleshooting.md" in text
