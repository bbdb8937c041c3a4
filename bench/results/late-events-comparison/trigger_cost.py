"""The cost of device_events_late_insert (timeseries migration 0010) on in-order current events: the sink's own
write path (write_events, 500 events per transaction) with the trigger created and dropped, alternating.

Run as the time-series database's owner (the trigger is dropped and created again; hypertables refuse
ALTER TABLE .. DISABLE TRIGGER), from the checkout:

    .venv/bin/python bench/results/late-events-comparison/trigger_cost.py "$F2_TIMESERIES_DSN"

It writes and then deletes the events of its own controller (b0b0b0b0b0b0) and leaves the trigger created.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from streaming.sink.event_rows import EventRow
from streaming.sink.writer import write_events

MAC = "b0b0b0b0b0b0"
EVENTS, BATCH, ROUNDS = 20_000, 500, 3
CREATE = """CREATE TRIGGER device_events_late_insert BEFORE INSERT ON device_events FOR EACH ROW
    WHEN (NEW."time" < time_bucket(INTERVAL '1 hour', clock_timestamp())) EXECUTE FUNCTION f2_log_late_event()"""
PENDING = "SELECT count(*) FROM aggregate_invalidations WHERE aggregate LIKE 'events_%%'"


def door_events(start: datetime) -> list[EventRow]:
    """Forty doors changing state in turn, a millisecond apart, from `start` on."""
    return [
        EventRow(
            start + timedelta(milliseconds=i),
            MAC,
            1,
            f"door-sensor-{i % 40 + 1}",
            "state",
            None,
            None,
            "open" if (i // 40) % 2 else "closed",
            None,
            None,
            None,
            None,
            f"stat/f2-{MAC}/access-control-mode/J1/door-sensors",
            None,
            None,
        )
        for i in range(EVENTS)
    ]


def remove(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM device_events WHERE controller_mac = %s", (MAC,))
    conn.execute("DELETE FROM component_states WHERE controller_mac = %s", (MAC,))


def count(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def main(dsn: str) -> None:
    seconds: dict[str, list[float]] = {"created": [], "dropped": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        pending_before = count(conn, PENDING)
        for _ in range(ROUNDS):
            for mode in seconds:
                remove(conn)
                conn.execute("DROP TRIGGER IF EXISTS device_events_late_insert ON device_events")
                if mode == "created":
                    conn.execute(CREATE)
                now = datetime.now(UTC)
                # In the current hour, as the sink's live events are (its first second, so the hour holds them).
                events = door_events(now.replace(minute=0, second=0, microsecond=0) + timedelta(seconds=1))
                started = time.perf_counter()
                for k in range(0, EVENTS, BATCH):
                    with conn.transaction():
                        write_events(conn, events[k : k + BATCH])
                seconds[mode].append(time.perf_counter() - started)
        conn.execute("DROP TRIGGER IF EXISTS device_events_late_insert ON device_events")
        conn.execute(CREATE)
        logged = count(conn, PENDING) - pending_before
        remove(conn)
    for mode, runs in seconds.items():
        best = min(runs)
        print(
            f"trigger {mode}: {', '.join(f'{s:.3f}' for s in runs)} s per {EVENTS:,} events; "
            f"best {best:.3f} s, {best / EVENTS * 1e6:.1f} us per event"
        )
    print(f"invalidations these writes logged: {logged}")


if __name__ == "__main__":
    main(sys.argv[1])
