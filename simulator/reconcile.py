"""Nothing lost, nothing duplicated: the rows of decoded_data against the readings of every message the broker
acknowledged (the simulator's `--ledger` files), and device_events and component_states against their events.
`f2 simulate --reconcile`, the demo's history and the bench use it; the real-time path's acceptance tests do
the same for readings on their own (tests/realtime.py).

Rows are compared over the ledgers' devices (events: controllers) and exactly the span of their timestamps (to
the microsecond), so what the same devices sent before or after, live or in another replay, is not counted
against it. The previous state and duration of events are computed here from the ledger's events in device
time order, continuing from the states the database held before the ledger's first event of each component.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
Key = tuple[int, int, int]  # (timestamp in us, device_id, datapoint_id)


@dataclass
class Reconciliation:
    expected: int
    observed: int
    ok: bool
    detail: str = ""


def _us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - _EPOCH) // _ONE_US


def ledger_readings(paths: Iterable[Path]) -> tuple[dict[Key, float], int]:
    """(timestamp, device_id, datapoint_id) -> value of every reading, and the number of messages."""
    out: dict[Key, float] = {}
    messages = 0
    for path in paths:
        if not path.exists():
            continue
        with open(path) as fh:
            for line in fh:
                messages += 1
                for r in json.loads(line)["readings"]:
                    out[(_us(r["timestamp"]), int(r["device_id"]), int(r["datapoint_id"]))] = float(r["value"])
    return out, messages


def _bounds(expected: dict[Key, float]) -> tuple[list[int], datetime, datetime]:
    stamps = [k[0] for k in expected]
    first = _EPOCH + timedelta(microseconds=min(stamps))
    last = _EPOCH + timedelta(microseconds=max(stamps))
    return sorted({k[1] for k in expected}), first, last


def stored_count(dsn: str, expected: dict[Key, float]) -> int:
    devices, first, last = _bounds(expected)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute(
            'SELECT count(*) FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" BETWEEN %s AND %s',
            (devices, first, last),
        ).fetchone()
    return int(row[0]) if row else 0


def reconcile(expected: dict[Key, float], dsn: str) -> Reconciliation:
    if not expected:
        return Reconciliation(0, 0, False, "the ledger is empty: nothing was acknowledged")
    devices, first, last = _bounds(expected)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            # extract(epoch) is numeric (exact) since PostgreSQL 14: microseconds survive.
            'SELECT (extract(epoch FROM "timestamp") * 1000000)::bigint, device_id, datapoint_id, value '
            'FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" BETWEEN %s AND %s',
            (devices, first, last),
        ).fetchall()
    stored = {(int(ts), d, p): v for ts, d, p, v in rows}
    missing = set(expected) - set(stored)
    unexpected = set(stored) - set(expected)
    wrong = [
        k for k in set(expected) & set(stored) if not math.isclose(expected[k], stored[k], rel_tol=0, abs_tol=1e-9)
    ]
    ok = not (missing or unexpected or wrong) and len(stored) == len(expected)
    detail = (
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} with a wrong value"
        + (f"; e.g. missing {sorted(missing)[:3]}" if missing else "")
        + (f"; e.g. unexpected {sorted(unexpected)[:3]}" if unexpected else "")
    )
    return Reconciliation(len(expected), len(stored), ok, detail)


def wait_reconciled(expected: dict[Key, float], dsn: str, timeout: float) -> Reconciliation:
    """Wait until the rows are all there (cheap counts), then compare them reading by reading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stored_count(dsn, expected) < len(expected):
        time.sleep(1.0)
    report = reconcile(expected, dsn)
    while not report.ok and time.monotonic() < deadline:
        time.sleep(2.0)
        report = reconcile(expected, dsn)
    return report


# ------------------------------------------------------------------------------------------------- events

Component = tuple[str, int, str]  # (controller MAC, connector, component)
EventKey = tuple[int, str, int, str, str]  # (time in us, controller MAC, connector, component, kind)
# The columns compared besides the key, in this order.
EVENT_COLUMNS: tuple[str, ...] = (
    "controller_id",
    "device_id",
    "state",
    "previous_state",
    "previous_duration_us",
    "credential_fingerprint",
    "credential_key_id",
    "credential_length",
    "indicator_hex",
    "mqtt_topic",
)
EventRow = tuple[object, ...]  # EVENT_COLUMNS' values


@dataclass(frozen=True)
class ComponentState:
    """A component_states row: the latest state, since the first event of its run, the latest event's time."""

    state: str
    since_us: int
    last_event_us: int
    controller_id: int | None
    device_id: int | None


def ledger_events(paths: Iterable[Path]) -> list[dict[str, object]]:
    """Every event of every acknowledged message (lines written before events existed have none)."""
    out: list[dict[str, object]] = []
    for path in paths:
        if not path.exists():
            continue
        with open(path) as fh:
            for line in fh:
                out.extend(json.loads(line).get("events", ()))
    return out


def _component(e: dict[str, object]) -> Component:
    return (str(e["controller_mac"]), int(e["connector"]), str(e["component"]))  # type: ignore[call-overload]


def expected_events(
    events: list[dict[str, object]], before: dict[Component, tuple[str, int]] | None = None
) -> tuple[dict[EventKey, EventRow], dict[Component, ComponentState]]:
    """Pure: each event as device_events must hold it, and each stateful component's component_states row.

    docs/domain.md, "Events": a state event's previous state is the state of the component's latest state
    event before it by device time, and its duration runs from the first event of that state's run of equal
    states to this event; a component's first event has neither. `before` gives, per component, the state and
    run start (us) the database already held before the ledger's first event of that component."""
    rows: dict[EventKey, EventRow] = {}
    by_component: dict[Component, list[tuple[int, dict[str, object]]]] = {}
    for e in events:
        t = _us(str(e["time"]))
        by_component.setdefault(_component(e), []).append((t, e))
    states: dict[Component, ComponentState] = {}
    for comp, timed in by_component.items():
        timed.sort(key=lambda te: te[0])
        run: tuple[str, int] | None = (before or {}).get(comp)
        last: tuple[int, dict[str, object]] | None = None
        for t, e in timed:
            previous: tuple[object, object] = (None, None)
            if e["kind"] == "state":
                state = str(e["state"])
                if run is not None:
                    previous = (run[0], t - run[1])
                run = (state, run[1] if run is not None and run[0] == state else t)
                last = (t, e)
            rows[(t, *comp, str(e["kind"]))] = (
                e["controller_id"],
                e["device_id"],
                e["state"],
                *previous,
                e["credential_fingerprint"],
                e["credential_key_id"],
                e["credential_length"],
                e["indicator_hex"],
                e["mqtt_topic"],
            )
        if last is not None and run is not None:
            t, e = last
            states[comp] = ComponentState(run[0], run[1], t, e["controller_id"], e["device_id"])  # type: ignore[arg-type]
    return rows, states


# The state and run start the database held for each component before a time, from the stored states and times
# only (never the stored previous_state/duration, which are what is being checked): the latest state event
# before it, and the first event of the run of equal states that event ends.
_BEFORE_SQL = """
SELECT c.mac, c.connector, c.component, l.state, (extract(epoch FROM r.start) * 1000000)::bigint
FROM unnest(%s::text[], %s::smallint[], %s::text[], %s::timestamptz[]) AS c(mac, connector, component, first)
JOIN LATERAL (
    SELECT d.state, d."time" FROM device_events d
    WHERE d.controller_mac = c.mac AND d.connector = c.connector AND d.component = c.component
      AND d.kind = 'state' AND d."time" < c.first
    ORDER BY d."time" DESC LIMIT 1
) l ON true
JOIN LATERAL (
    SELECT min(d."time") AS start FROM device_events d
    WHERE d.controller_mac = c.mac AND d.connector = c.connector AND d.component = c.component
      AND d.kind = 'state' AND d."time" <= l."time"
      AND d."time" > coalesce((
          SELECT max(x."time") FROM device_events x
          WHERE x.controller_mac = c.mac AND x.connector = c.connector AND x.component = c.component
            AND x.kind = 'state' AND x."time" < l."time" AND x.state IS DISTINCT FROM l.state
      ), '-infinity')
) r ON true
"""
_STORED_EVENTS_SQL = """
SELECT (extract(epoch FROM "time") * 1000000)::bigint, controller_mac, connector, component, kind, controller_id,
       device_id, state, previous_state, previous_duration_s, credential_fingerprint, credential_key_id,
       credential_length, indicator_hex, mqtt_topic
FROM device_events
WHERE controller_mac = ANY(%s) AND "time" BETWEEN %s AND %s AND kind <> 'presence'
"""
_STATES_SQL = """
SELECT s.controller_mac, s.connector, s.component, s.state, (extract(epoch FROM s.since) * 1000000)::bigint,
       (extract(epoch FROM s.last_event_at) * 1000000)::bigint, s.controller_id, s.device_id
FROM component_states s
WHERE s.controller_mac = ANY(%s)
"""


def _first_of(events: list[dict[str, object]]) -> dict[Component, int]:
    first: dict[Component, int] = {}
    for e in events:
        if e["kind"] == "state":
            comp, t = _component(e), _us(str(e["time"]))
            first[comp] = min(t, first.get(comp, t))
    return first


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def stored_before(dsn: str, events: list[dict[str, object]]) -> dict[Component, tuple[str, int]]:
    first = _first_of(events)
    if not first:
        return {}
    comps = sorted(first)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            _BEFORE_SQL,
            ([c[0] for c in comps], [c[1] for c in comps], [c[2] for c in comps], [_at(first[c]) for c in comps]),
        ).fetchall()
    return {(str(m), int(n), str(c)): (str(s), int(start)) for m, n, c, s, start in rows}


def reconcile_events(events: list[dict[str, object]], dsn: str) -> Reconciliation:
    """device_events and component_states against the ledger's events, exactly: every event once with the
    state, previous state and duration (to the microsecond) the ledger gives, no other event of the ledger's
    controllers within its time span (presence events aside: the sink makes those from silence), and each
    component's component_states row equal to its last event's run."""
    if not events:
        return Reconciliation(0, 0, False, "the ledger holds no event")
    expected, states = expected_events(events, stored_before(dsn, events))
    stamps = [k[0] for k in expected]
    macs = sorted({k[1] for k in expected})
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute(_STORED_EVENTS_SQL, (macs, _at(min(stamps)), _at(max(stamps)))).fetchall()
        state_rows = conn.execute(_STATES_SQL, (macs,)).fetchall()
    stored: dict[EventKey, EventRow] = {}
    for t, mac, connector, component, kind, *values in rows:
        duration = values[4]
        # Stored in seconds (double precision); the device times, and so the durations, are whole microseconds.
        values[4] = None if duration is None else round(duration * 1_000_000)
        stored[(int(t), str(mac), int(connector), str(component), str(kind))] = tuple(values)
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    stored_states = {
        (str(m), int(n), str(c)): ComponentState(str(s), int(since), int(last), cid, did)
        for m, n, c, s, since, last, cid, did in state_rows
    }
    # A component whose latest stored event is later than the ledger's (a later run of the same fleet) has
    # moved on: its state is not the ledger's to check.
    later = {c for c, s in stored_states.items() if c in states and s.last_event_us > states[c].last_event_us}
    wrong_states = sorted(c for c in states if c not in later and stored_states.get(c) != states[c])
    ok = not (missing or unexpected or wrong or wrong_states)
    detail = (
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} with other values; "
        f"component_states: {len(states) - len(later) - len(wrong_states)} of {len(states) - len(later)} equal"
        + (f" ({len(later)} moved on by later events)" if later else "")
        + (f"; e.g. missing {missing[:3]}" if missing else "")
        + (f"; e.g. unexpected {unexpected[:3]}" if unexpected else "")
        + "".join(
            f"; {k}: ledger {dict(zip(EVENT_COLUMNS, expected[k], strict=True))}, "
            f"stored {dict(zip(EVENT_COLUMNS, stored[k], strict=True))}"
            for k in wrong[:2]
        )
        + "".join(f"; {c}: ledger {states[c]}, stored {stored_states.get(c)}" for c in wrong_states[:2])
    )
    return Reconciliation(len(expected), len(stored), ok, detail)


def wait_events_reconciled(events: list[dict[str, object]], dsn: str, timeout: float) -> Reconciliation:
    """Compare until equal or `timeout` s passed (the pipeline may still be catching up)."""
    deadline = time.monotonic() + timeout
    report = reconcile_events(events, dsn)
    while not report.ok and time.monotonic() < deadline:
        time.sleep(2.0)
        report = reconcile_events(events, dsn)
    return report
