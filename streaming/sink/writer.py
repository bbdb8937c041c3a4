"""The sink's database transaction: one batch of validated rows into `decoded_data` and `latest_values`, and
its events into `device_events`, `component_states` and `controller_presence`; the periodic offline check.

Shared by `f2 sink` and `f2 bench`'s reference figures, so that the reference measures the same SQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import psycopg

from streaming.decoding.events import PRESENCE, SEEN, STATE
from streaming.sink.event_rows import EventRow, Presence, apply_seen
from streaming.sink.event_sql import (
    CORRECT_MANY_SQL,
    CORRECT_SQL,
    INSERT_EVENTS_SQL,
    LOCK_PRESENCE_SQL,
    OFFLINE_SQL,
    ORDER_SQL,
    PRESENCE_SQL,
)
from streaming.sink.sql import (
    BATCH_RECORD_SQL,
    COPY_BINARY_SQL,
    COPY_SQL,
    INSERT_SQL,
    LATEST_MERGE_PLAN,
    LATEST_MERGE_SQL,
    LATEST_SQL,
    UPSERT_SQL,
)

# Up to this many stale rows are corrected one key at a time (each a primary-key probe); more in one join.
_CORRECT_ONE_BY_ONE = 50


class BatchRecord(NamedTuple):
    """What one sink transaction held, for `f2 trace` (sink_batches): per partition range, its topic, partition,
    first and last offset; and how many readings and events it wrote."""

    batch_id: int
    topics: list[str]
    partitions: list[int]
    first_offsets: list[int]
    last_offsets: list[int]
    readings: int
    events: int


@dataclass
class EventsStored:
    """What a batch's events changed: new device_events rows by kind (presence transitions included), stored
    rows whose previous state a late event corrected, component_states rows written, heartbeats taken."""

    inserted: Counter[str] = field(default_factory=Counter)
    corrected: int = 0
    states: int = 0
    heartbeats: int = 0


def write_batch(
    db: psycopg.Connection, copy_data: bytes, binary: bool = False, events: Sequence[EventRow] = ()
) -> bool:
    """Store the rows in `copy_data` (COPY text, or COPY binary data when `binary`) and `events` in one
    transaction; True when some reading keys existed already.

    The batch is inserted plainly; when a key already exists the insert is rolled back to its savepoint and
    the batch is upserted instead (a stored reading with a new value is replaced, as the contract says).
    latest_values is merged; when another writer inserted one of the batch's new series first, the merge is
    rolled back to its savepoint and the batch's latest values are upserted instead.
    """
    return store_batch(db, copy_data, binary, events)[0]


def store_batch(
    db: psycopg.Connection,
    copy_data: bytes,
    binary: bool = False,
    events: Sequence[EventRow] = (),
    record: BatchRecord | None = None,
) -> tuple[bool, EventsStored]:
    """write_batch, also saying what the events changed; with `record`, the batch's row of sink_batches in the
    same transaction."""
    stored = EventsStored()
    with db.transaction():
        upserted = _write_readings(db, copy_data, binary) if copy_data else False
        if events:
            stored = write_events(db, events)
        if record is not None:
            db.execute(BATCH_RECORD_SQL, record)
    return upserted, stored


def _write_readings(db: psycopg.Connection, copy_data: bytes, binary: bool) -> bool:
    upserted = False
    with db.cursor() as cur, cur.copy(COPY_BINARY_SQL if binary else COPY_SQL) as copy:
        copy.write(copy_data)
    try:
        with db.transaction():
            db.execute(INSERT_SQL)
    except psycopg.errors.UniqueViolation:
        upserted = True
        db.execute(UPSERT_SQL)
    try:
        with db.transaction():
            for setting in LATEST_MERGE_PLAN:
                db.execute(setting)
            db.execute(LATEST_MERGE_SQL)
    except psycopg.errors.UniqueViolation:
        db.execute(LATEST_SQL)
    return upserted


def write_events(db: psycopg.Connection, events: Sequence[EventRow]) -> EventsStored:
    """Store a batch's events inside the caller's transaction: the events themselves (idempotent), what a
    late one changes in the stored order, the components' current states and the controllers' presence."""
    stored = EventsStored()
    rows = [e for e in events if e.kind != SEEN]
    if rows:
        columns = _columns([e[:13] for e in rows], 13)
        affected: list[tuple[str, int, str, object]] = []
        for mac, connector, component, kind, first, count, in_order, states in db.execute(
            INSERT_EVENTS_SQL, columns
        ).fetchall():
            stored.inserted[kind] += count
            stored.states = states
            if kind == STATE and not in_order:
                affected.append((mac, connector, component, first))
        if affected:
            ordered = db.execute(ORDER_SQL, _columns(affected, 4)).fetchall()
            stored.states += int(ordered[0][0])
            stale = [row[1:] for row in ordered if row[3] is not None]
            if len(stale) > _CORRECT_ONE_BY_ONE:
                db.execute(CORRECT_MANY_SQL, _columns(stale, 6))
            elif stale:
                with db.cursor() as cur:
                    cur.executemany(CORRECT_SQL, stale)
            stored.corrected = len(stale)
    seen = [e for e in events if e.kind == SEEN]
    if seen:
        stored.heartbeats = len(seen)
        macs = sorted({e.controller_mac for e in seen})
        current = {r[0]: Presence(*r) for r in db.execute(LOCK_PRESENCE_SQL, (macs,)).fetchall()}
        changed, transitions = apply_seen(current, seen)
        if changed:
            presence = [changed[mac] for mac in sorted(changed)]
            result = db.execute(PRESENCE_SQL, [*_columns(presence, 6), *_columns(transitions, 6)]).fetchone()
            assert result is not None
            stored.inserted[PRESENCE] += result[1]
    return stored


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """Rows as one list per column: the arrays the statements unnest."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def mark_silent_offline(db: psycopg.Connection) -> list[str]:
    """One transaction: every controller silent past its silence_after_s goes offline, with its event; returns
    their MACs."""
    with db.transaction():
        return [row[0] for row in db.execute(OFFLINE_SQL).fetchall()]
