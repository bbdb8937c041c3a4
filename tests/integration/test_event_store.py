"""The sink's event transaction against the real database (streaming/sink/writer.py, sql/timeseries/0006):
idempotent storage, previous state and duration from the stored order (late events included), component_states,
and controller presence with its offline check, as the sink's own role f2_sink.

Every test uses controller MACs of its own (random) and removes their rows afterwards. The expected previous
states, durations and current states are computed here, from the events each test wrote, by a reference written
from docs/domain.md ("Events") that shares nothing with the SQL."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from streaming.settings import ConnectionSettings
from streaming.sink.event_rows import EventRow
from streaming.sink.event_sql import OFFLINE_SQL
from streaming.sink.sql import STAGING_DDL
from streaming.sink.writer import mark_silent_offline, store_batch, write_batch

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
FP = "c0ffee" * 10 + "c0ff"


def new_mac() -> str:
    return "e7" + uuid.uuid4().hex[:10]


@pytest.fixture()
def macs(migrated: ConnectionSettings) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as owner:
        for table in ("device_events", "component_states", "controller_presence"):
            owner.execute(f"DELETE FROM {table} WHERE controller_mac = ANY(%s)", (made,))  # noqa: S608 - fixed names


@pytest.fixture()
def sink(migrated: ConnectionSettings) -> Iterator[psycopg.Connection]:
    """A connection as the sink's role, as `f2 sink` opens it."""
    with psycopg.connect(migrated.timeseries_dsn) as db:
        db.execute("SET ROLE f2_sink")
        db.execute(STAGING_DDL)
        db.commit()
        yield db


def state(mac: str, at: datetime, st: str, component: str = "door-sensor-1", connector: int = 2) -> EventRow:
    topic = f"stat/f2-{mac}/access-control-mode/J{connector}/door-sensors"
    return EventRow(at, mac, connector, component, "state", None, None, st, None, None, None, None, topic, None, None)


def seen(mac: str, at: datetime, silence: float, controller_id: int | None = None) -> EventRow:
    return EventRow(
        at, mac, 0, "controller", "seen", controller_id, None, None, None, None, None, None, None, silence, at
    )


def stored_events(db: psycopg.Connection, mac: str, kind: str = "state") -> list[tuple]:
    rows = db.execute(
        'SELECT "time", component, state, previous_state, previous_duration_s FROM device_events '
        'WHERE controller_mac = %s AND kind = %s ORDER BY component, "time"',
        (mac, kind),
    ).fetchall()
    db.commit()
    return rows


def component_state(db: psycopg.Connection, mac: str, component: str = "door-sensor-1") -> tuple | None:
    row = db.execute(
        "SELECT state, since, last_event_at FROM component_states WHERE controller_mac = %s AND component = %s",
        (mac, component),
    ).fetchone()
    db.commit()
    return row


def reference(events: list[tuple[datetime, str]]) -> tuple[list[tuple], tuple]:
    """(time, state, previous_state, previous_duration_s) per event, and (state, since, last_event_at)."""
    ordered = sorted(set(events))
    out = []
    run_start = ordered[0][0]
    for i, (at, st) in enumerate(ordered):
        if i == 0:
            out.append((at, st, None, None))
            continue
        _, before = ordered[i - 1]
        out.append((at, st, before, (at - run_start).total_seconds()))
        if st != before:
            run_start = at
    last_at, last = ordered[-1]
    return out, (last, run_start, last_at)


def assert_matches(db: psycopg.Connection, mac: str, events: list[tuple[datetime, str]]) -> None:
    expected, current = reference(events)
    got = [(at, st, prev, dur) for at, _, st, prev, dur in stored_events(db, mac)]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert (g[3] is None) == (e[3] is None) and (g[3] is None or abs(g[3] - e[3]) < 1e-6), (g, e)
    assert component_state(db, mac) == current


def test_events_are_stored_once_and_a_redelivery_changes_nothing(sink: psycopg.Connection, macs: list[str]) -> None:
    mac = new_mac()
    macs.append(mac)
    access = EventRow(
        T0, mac, 1, "reader-1", "access", 7, None, None, FP, "k1", 11, None, f"tele/f2-{mac}/x/J1/reader-1", None, None
    )
    batch = [state(mac, T0, "open"), state(mac, T0 + timedelta(seconds=7), "closed"), access]
    _, stored = store_batch(sink, b"", events=[*batch, batch[0]])  # the same event twice in one batch
    assert stored.inserted == {"state": 2, "access": 1}
    _, again = store_batch(sink, b"", events=batch)  # the sink restarted before committing its offsets
    assert sum(again.inserted.values()) == 0 and again.corrected == 0 and again.states == 0
    assert_matches(sink, mac, [(T0, "open"), (T0 + timedelta(seconds=7), "closed")])
    (row,) = stored_events(sink, mac, "access")
    assert row[1:3] == ("reader-1", None)
    fingerprint = sink.execute(
        "SELECT credential_fingerprint, credential_key_id, credential_length, controller_id FROM device_events "
        "WHERE controller_mac = %s AND kind = 'access'",
        (mac,),
    ).fetchone()
    sink.commit()
    assert fingerprint == (FP, "k1", 11, 7)


def test_a_late_event_recomputes_its_successors_and_the_current_state(
    sink: psycopg.Connection, macs: list[str]
) -> None:
    mac = new_mac()
    macs.append(mac)
    t = [T0 + timedelta(seconds=s) for s in (0, 10, 20, 30, 40)]
    written = [(t[0], "closed"), (t[2], "closed"), (t[3], "open")]
    write_batch(sink, b"", events=[state(mac, at, st) for at, st in written])
    assert_matches(sink, mac, written)
    # open at t1 arrives late: the closed at t2 now follows it, and the open at t3 follows a closed run that
    # began at t2, no longer at t0.
    _, stored = store_batch(sink, b"", events=[state(mac, t[1], "open")])
    assert stored.corrected == 2
    assert_matches(sink, mac, [*written, (t[1], "open")])
    # A late event older than all: the current state keeps its place in time.
    write_batch(sink, b"", events=[state(mac, T0 - timedelta(days=3), "open")])
    assert_matches(sink, mac, [*written, (t[1], "open"), (T0 - timedelta(days=3), "open")])


def test_events_after_the_stored_tail_continue_its_run_without_corrections(
    sink: psycopg.Connection, macs: list[str]
) -> None:
    mac = new_mac()
    macs.append(mac)
    t = [T0 + timedelta(seconds=s, microseconds=7) for s in (0, 10, 25, 31, 40, 52, 60)]
    written = [(t[0], "closed"), (t[1], "closed")]
    write_batch(sink, b"", events=[state(mac, at, st) for at, st in written])
    # All newer than the stored latest: the closed run of t0 goes on, then changes twice, within one batch.
    batch = [(t[2], "closed"), (t[3], "open"), (t[4], "open"), (t[5], "closed")]
    _, stored = store_batch(sink, b"", events=[state(mac, at, st) for at, st in reversed(batch)])
    assert stored.inserted == {"state": 4} and stored.corrected == 0 and stored.states == 1
    assert_matches(sink, mac, written + batch)
    # One more on its own, after the new tail.
    _, stored = store_batch(sink, b"", events=[state(mac, t[6], "closed")])
    assert stored.corrected == 0
    assert_matches(sink, mac, [*written, *batch, (t[6], "closed")])


def test_a_late_event_inside_a_long_run_corrects_the_rest_of_the_run(sink: psycopg.Connection, macs: list[str]) -> None:
    mac = new_mac()
    macs.append(mac)
    run = [(T0 + timedelta(seconds=10 * i), "closed") for i in range(120)] + [(T0 + timedelta(seconds=1300), "open")]
    write_batch(sink, b"", events=[state(mac, at, st) for at, st in run])
    late = (T0 + timedelta(seconds=15), "open")
    _, stored = store_batch(sink, b"", events=[state(mac, *late)])
    # The closed event at 20 s now follows it; the 117 closed events after that belong to a run that starts at
    # 20 s, no longer at 0 s; and the open at the end follows that run: 119 rows change.
    assert stored.corrected == 119
    assert_matches(sink, mac, [*run, late])


def test_any_arrival_order_and_batching_gives_the_stored_orders_states(
    sink: psycopg.Connection, macs: list[str]
) -> None:
    rng = random.Random(17)
    mac = new_mac()
    macs.append(mac)
    events = []
    at = T0
    for _ in range(60):
        at += timedelta(seconds=rng.randint(1, 600), microseconds=rng.randint(0, 999_999))
        events.append((at, rng.choice(["open", "closed", "closed"])))
    arrivals = events + rng.sample(events, 10)  # some twice
    rng.shuffle(arrivals)
    while arrivals:
        size = rng.randint(1, 9)
        batch, arrivals = arrivals[:size], arrivals[size:]
        write_batch(sink, b"", events=[state(mac, a, s) for a, s in batch])
    assert_matches(sink, mac, events)


def test_components_are_kept_apart(sink: psycopg.Connection, macs: list[str]) -> None:
    mac = new_mac()
    macs.append(mac)
    write_batch(
        sink,
        b"",
        events=[
            state(mac, T0, "open", "door-sensor-1"),
            state(mac, T0, "closed", "door-sensor-2"),
            state(mac, T0, "pressed", "door-sensor-1", connector=3),  # the same name on another connector
            state(mac, T0 + timedelta(seconds=5), "closed", "door-sensor-1"),
        ],
    )
    rows = sink.execute(
        "SELECT connector, component, state, since FROM component_states WHERE controller_mac = %s ORDER BY 1, 2",
        (mac,),
    ).fetchall()
    sink.commit()
    assert rows == [
        (2, "door-sensor-1", "closed", T0 + timedelta(seconds=5)),
        (2, "door-sensor-2", "closed", T0),
        (3, "door-sensor-1", "pressed", T0),
    ]


def presence(db: psycopg.Connection, mac: str) -> tuple | None:
    row = db.execute(
        "SELECT state, since, last_seen, silence_after_s, controller_id FROM controller_presence "
        "WHERE controller_mac = %s",
        (mac,),
    ).fetchone()
    db.commit()
    return row


def test_presence_goes_offline_once_after_the_silence_and_online_again_with_the_outage(
    sink: psycopg.Connection, migrated: ConnectionSettings, macs: list[str]
) -> None:
    mac, quiet = new_mac(), new_mac()
    macs += [mac, quiet]
    now = datetime.now(UTC)
    heard = now - timedelta(seconds=100)
    write_batch(sink, b"", events=[seen(mac, heard - timedelta(seconds=30), 60.0, 5), seen(mac, heard, 60.0, 5)])
    write_batch(sink, b"", events=[seen(quiet, now, 3600.0)])  # silent for far less than its threshold
    assert presence(sink, mac) == ("online", heard - timedelta(seconds=30), heard, 60.0, 5)
    assert stored_events(sink, mac, "presence") == []

    assert mac in mark_silent_offline(sink)
    assert mark_silent_offline(sink) == []  # once
    offline_at = heard + timedelta(seconds=60)
    assert presence(sink, mac) == ("offline", offline_at, heard, 60.0, 5)
    assert presence(sink, quiet)[0] == "online"  # type: ignore[index]
    (offline,) = stored_events(sink, mac, "presence")
    assert offline == (offline_at, "controller", "offline", "online", 90.0)

    back = now - timedelta(seconds=1)
    redelivered = seen(mac, heard, 60.0, 5)
    write_batch(sink, b"", events=[redelivered])  # an old heartbeat again: still offline
    assert presence(sink, mac)[0] == "offline"  # type: ignore[index]
    write_batch(sink, b"", events=[seen(mac, back, 60.0, 5), redelivered])
    write_batch(sink, b"", events=[seen(mac, back, 60.0, 5)])  # the transition's heartbeat, redelivered
    assert presence(sink, mac) == ("online", back, back, 60.0, 5)
    events = stored_events(sink, mac, "presence")
    assert [e[2] for e in events] == ["offline", "online"]
    assert events[1][0] == back and events[1][3] == "offline"
    assert abs(events[1][4] - (back - offline_at).total_seconds()) < 1e-6


def test_concurrent_offline_checks_turn_each_controller_offline_once(
    migrated: ConnectionSettings, sink: psycopg.Connection, macs: list[str]
) -> None:
    mac = new_mac()
    macs.append(mac)
    write_batch(sink, b"", events=[seen(mac, datetime.now(UTC) - timedelta(seconds=50), 10.0)])
    with psycopg.connect(migrated.timeseries_dsn) as other:
        other.execute("SET ROLE f2_sink")
        # One sink's check holds the row (not yet committed): the other's skips it without waiting, and after
        # the commit finds it offline already.
        gone = other.execute(OFFLINE_SQL).fetchall()
        assert (mac,) in gone
        assert mac not in mark_silent_offline(sink)
        other.commit()
    assert mac not in mark_silent_offline(sink)
    assert [e[2] for e in stored_events(sink, mac, "presence")] == ["offline"]
