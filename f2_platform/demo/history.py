"""`f2 demo up --history 24h`: the last hours of the sample fleet sent through the real pipeline, then
materialized in Dagster, so the demo shows aggregates, checks and a report within minutes.

1. `f2 simulate --history` replays the window (MQTT -> bridge -> Kafka -> processor -> sink, device
   timestamps in the past, as fast as its rate allows: frames, and the events of the doors, buttons, motion
   sensors, strikes, sirens and readers) with a ledger of what the broker acknowledged, and `--reconcile`
   waits until decoded_data holds exactly the ledger's readings, and device_events and component_states
   its events;
2. the partitions of those hours are materialized in the demo's Dagster instance (materialize.py).

A record in $F2_STATE_DIR/demo/history.json says what was loaded, so a second `make demo` loads nothing
again (and finishes the Dagster part if it did not finish). The simulator is a development tool the product
does not import: it runs here as the `f2 simulate` command.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from f2_platform.demo.materialize import Materialized, materialize_history
from f2_platform.demo.plan import (
    HistoryRecord,
    HistoryWindow,
    partitions_of,
    plan_window,
    read_record,
    record_path,
    write_record,
)
from f2_platform.errors import F2Error
from f2_platform.stack.daemons import F2
from f2_platform.stack.manager import Stack

Say = Callable[[str], None]
# The sample fleet's sensors report every 30 s in the history (the live demo: every 5 s).
HISTORY_INTERVAL_S = 30
RECONCILE_TIMEOUT_S = 600

_FIRST_STORED = 'SELECT min("timestamp") FROM decoded_data WHERE "timestamp" >= %s'


class HistoryError(F2Error):
    """The history could not be loaded; the message says what to do."""


@dataclass(frozen=True)
class HistoryOutcome:
    record: HistoryRecord
    loaded_now: bool  # False: an earlier `f2 demo up` loaded it


def load_history(
    stack: Stack,
    env: Mapping[str, str],
    length: timedelta,
    end: datetime | None,
    say: Say,
) -> HistoryOutcome | None:
    """Loads and materializes the history once per state folder; None when there is nothing to load."""
    state_dir = stack.settings.state_dir
    record = read_record(state_dir)
    log = stack.layout.log("demo-history")
    if record is not None and not record.reconciled:
        raise HistoryError(
            f"an earlier history load ({record.window.label()}) did not finish (see {log}); its readings may be "
            f"partly stored. To start over: f2 demo down && f2 stack reset --yes && make demo (or delete "
            f"{record_path(state_dir)} to keep the data and skip the history)"
        )
    loaded_now = record is None
    if record is None:
        now = datetime.now(UTC)
        conn = stack.env_settings()
        first_stored = _first_stored(conn.timeseries_dsn, min(end or now, now) - length)
        window = plan_window(now, length, end, first_stored)
        if window is None:
            say(f"history: the store already holds readings from {first_stored:%Y-%m-%d %H:%M} UTC on; none loaded")
            return None
        record = _replay(stack, env, window, log, say)
    if record.materialized is None:
        say(f"history: materializing {record.window.label()} in Dagster ({stack.layout.root / 'dagster'})")
        done = _materialize(stack, env, record, say)
        record.materialized = done.to_json()
        write_record(state_dir, record)
    return HistoryOutcome(record, loaded_now)


def _first_stored(dsn: str, since: datetime) -> datetime | None:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute(_FIRST_STORED, (since,)).fetchone()
    return row[0] if row and row[0] is not None else None


def _replay(stack: Stack, env: Mapping[str, str], window: HistoryWindow, log: Path, say: Say) -> HistoryRecord:
    state_dir = stack.settings.state_dir
    ledger = state_dir / "demo" / "history-ledger.jsonl"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.unlink(missing_ok=True)
    record = HistoryRecord.of(window, ledger)
    write_record(state_dir, record)  # before publishing: a later run knows a load began
    say(
        f"history: replaying {window.label()} of the sample fleet (one frame per sensor every "
        f"{HISTORY_INTERVAL_S} s) through MQTT -> bridge -> Kafka -> processor -> sink; log {log}"
    )
    argv = [
        F2,
        "simulate",
        "--history",
        f"{int(window.length.total_seconds())}s",
        "--start",
        window.start.isoformat(),
        "--interval",
        str(HISTORY_INTERVAL_S),
        "--ledger",
        str(ledger),
        "--reconcile",
        "--reconcile-timeout",
        str(RECONCILE_TIMEOUT_S),
    ]
    with open(log, "ab") as out:
        code = subprocess.run(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-8:])
        raise HistoryError(f"the history did not load (f2 simulate exited with {code}); last lines of {log}:\n{tail}")
    record.messages, record.readings, record.events = _ledger_counts(ledger)
    record.reconciled = True
    write_record(state_dir, record)
    say(
        f"history: {record.messages} messages acknowledged by the broker, {record.readings} readings, "
        f"{record.events} events; decoded_data and device_events match the ledger exactly ({ledger})"
    )
    return record


def _ledger_counts(ledger: Path) -> tuple[int, int, int]:
    """(messages, readings, events) of a ledger: one JSON line per message, with its readings and events."""
    messages = readings = events = 0
    with open(ledger) as fh:
        for line in fh:
            entry = json.loads(line)
            messages += 1
            readings += len(entry["readings"])
            events += len(entry.get("events", ()))
    return messages, readings, events


def _materialize(stack: Stack, env: Mapping[str, str], record: HistoryRecord, say: Say) -> Materialized:
    from f2_platform.dagster_home import dagster_environment

    dagster_env = dagster_environment(stack.env_settings(), dict(env))
    # The code location's resources read F2_* from the process environment, as in a run worker.
    os.environ.update(dagster_env)
    partitions = partitions_of(record.window, datetime.now(UTC))
    return materialize_history(Path(dagster_env["DAGSTER_HOME"]), partitions, say)
