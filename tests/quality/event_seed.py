"""Seeded events: a day of access, alarm and presence events of two controllers of our own, written straight
into device_events (with previous states and durations, component_states and controller_presence as the sink
keeps them, computed here), and what the event aggregates and checks must find, computed here in plain
Python from the seeded events (never from the SQL under test)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg

# Our own controllers (the d0c0ffee07xx range) and a day no other test writes events into.
MAC_A = "d0c0ffee0701"
MAC_B = "d0c0ffee0702"
MAC_BAD = "d0c0ffee0703"  # the invalid event of test_invalid_events_fail_the_blocking_check
MACS = (MAC_A, MAC_B, MAC_BAD)
DAY = date(2025, 3, 12)
DAY_START = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
FP1, FP2, FP3 = ("a1" * 32, "b2" * 32, "c3" * 32)
HELD_OPEN_S = 300  # QualitySettings' default door_held_open_s

TOPICS = {
    "door-sensor": "stat/f2-{mac}/access-control-mode/J{c}/door-sensors",
    "exit-button": "stat/f2-{mac}/access-control-mode/J{c}/exit-buttons",
    "reader": "tele/f2-{mac}/access-control-mode/J{c}/{component}",
}


@dataclass(frozen=True)
class Event:
    time: datetime
    mac: str
    connector: int
    component: str
    kind: str
    state: str | None = None
    fingerprint: str | None = None
    indicator: str | None = None

    @property
    def key(self) -> tuple[str, int, str, str]:
        return (self.mac, self.connector, self.component, self.kind)


def at(hours: float, day_offset: int = 0) -> datetime:
    return DAY_START + timedelta(days=day_offset, seconds=round(hours * 3600, 3))


def hms(h: int, m: int, s: float = 0, day_offset: int = 0) -> datetime:
    return DAY_START + timedelta(days=day_offset, hours=h, minutes=m, seconds=s)


def events() -> list[Event]:
    a, b = MAC_A, MAC_B
    door = ("door-sensor-1", 1)
    return [
        # Scans on reader-1: three in hour 08 (two cards), one in hour 09 (a third card); an indicator response.
        Event(hms(8, 5), a, 1, "reader-1", "access", fingerprint=FP1),
        Event(hms(8, 5, 1), a, 1, "reader-1", "indicator", indicator="02 02 01 00 00 00 03 03"),
        Event(hms(8, 20), a, 1, "reader-1", "access", fingerprint=FP2),
        Event(hms(8, 40), a, 1, "reader-1", "access", fingerprint=FP1),
        Event(hms(9, 10), a, 1, "reader-1", "access", fingerprint=FP3),
        # The door: open across midnight (from the day before), a short opening, one held open 15 minutes
        # across 09:00, an opening at 10:00 reported twice, and one still open at the day's end.
        Event(hms(23, 50, day_offset=-1), a, door[1], door[0], "state", "open"),
        Event(hms(0, 2), a, door[1], door[0], "state", "closed"),
        Event(hms(8, 5, 3), a, door[1], door[0], "state", "open"),
        Event(hms(8, 5, 30), a, door[1], door[0], "state", "closed"),
        Event(hms(8, 55), a, door[1], door[0], "state", "open"),
        Event(hms(9, 10), a, door[1], door[0], "state", "closed"),
        Event(hms(10, 0), a, door[1], door[0], "state", "open"),
        Event(hms(10, 1), a, door[1], door[0], "state", "open"),
        Event(hms(10, 2), a, door[1], door[0], "state", "closed"),
        Event(hms(23, 58), a, door[1], door[0], "state", "open"),
        # Strike, siren, motion at night, an exit button.
        Event(hms(8, 5, 2), a, 1, "strike-1", "state", "powered"),
        Event(hms(8, 5, 7), a, 1, "strike-1", "state", "unpowered"),
        Event(hms(13, 0), a, 3, "siren-1", "state", "powered"),
        Event(hms(13, 2), a, 3, "siren-1", "state", "unpowered"),
        Event(hms(2, 10), a, 2, "motion-sensor-1", "state", "detected"),
        Event(hms(2, 11), a, 2, "motion-sensor-1", "state", "clear"),
        Event(hms(3, 0), a, 2, "motion-sensor-1", "state", "detected"),
        Event(hms(3, 5), a, 2, "motion-sensor-1", "state", "clear"),
        Event(hms(17, 0), a, 1, "exit-button-1", "state", "pressed"),
        Event(hms(17, 0, 1), a, 1, "exit-button-1", "state", "released"),
        # Presence: A offline 11:00-11:45; B offline from 22:00 the day before until 01:30.
        Event(hms(11, 0), a, 0, "controller", "presence", "offline"),
        Event(hms(11, 45), a, 0, "controller", "presence", "online"),
        Event(hms(22, 0, day_offset=-1), b, 0, "controller", "presence", "offline"),
        Event(hms(1, 30), b, 0, "controller", "presence", "online"),
    ]


@dataclass
class Stored:
    """An event with the previous state and its duration, as the sink derives them from the time order."""

    event: Event
    previous_state: str | None
    previous_duration_s: float | None


def with_previous(seeded: list[Event]) -> list[Stored]:
    out: list[Stored] = []
    by_key: dict[tuple[str, int, str, str], list[Event]] = defaultdict(list)
    for e in sorted(seeded, key=lambda e: e.time):
        by_key[e.key].append(e)
    for key, items in by_key.items():
        run_start: datetime | None = None
        before: Event | None = None
        for e in items:
            if key[3] not in ("state", "presence"):
                out.append(Stored(e, None, None))
                continue
            if before is None:
                out.append(Stored(e, None, None))
                run_start = e.time
            else:
                assert run_start is not None
                out.append(Stored(e, before.state, (e.time - run_start).total_seconds()))
                if e.state != before.state:
                    run_start = e.time
            before = e
    return out


def current_states(seeded: list[Event]) -> dict[tuple[str, int, str], tuple[str, datetime, datetime]]:
    """(mac, connector, component) -> (state, since, last event) of the state components."""
    out: dict[tuple[str, int, str], tuple[str, datetime, datetime]] = {}
    for e in sorted(seeded, key=lambda e: e.time):
        if e.kind != "state" or e.state is None:
            continue
        key = (e.mac, e.connector, e.component)
        previous = out.get(key)
        since = previous[1] if previous is not None and previous[0] == e.state else e.time
        out[key] = (e.state, since, e.time)
    return out


INSERT = """
INSERT INTO device_events ("time", controller_mac, connector, component, kind, state, previous_state,
    previous_duration_s, credential_fingerprint, credential_key_id, credential_length, indicator_hex, mqtt_topic)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def topic_of(e: Event) -> str | None:
    if e.kind == "presence":
        return None
    template = TOPICS.get(e.component.rsplit("-", 1)[0], "stat/f2-{mac}/access-control-mode/J{c}/{component}")
    return template.format(mac=e.mac, c=e.connector, component=e.component)


def insert_events(conn: psycopg.Connection, seeded: list[Event]) -> None:
    for s in with_previous(seeded):
        e = s.event
        credential = (e.fingerprint, "k1", 11) if e.fingerprint else (None, None, None)
        values = (e.time, e.mac, e.connector, e.component, e.kind, e.state, s.previous_state, s.previous_duration_s)
        conn.execute(INSERT, (*values, *credential, e.indicator, topic_of(e)))


def seed(conn: psycopg.Connection) -> list[Event]:
    seeded = events()
    remove(conn)
    with conn.transaction():
        insert_events(conn, seeded)
        for (mac, connector, component), (state, since, last) in current_states(seeded).items():
            conn.execute(
                "INSERT INTO component_states VALUES (%s, %s, %s, NULL, NULL, %s, %s, %s)",
                (mac, connector, component, state, since, last),
            )
        # Online again (their last presence events); a silence no sink's presence check reaches.
        for mac, since in ((MAC_A, hms(11, 45)), (MAC_B, hms(1, 30))):
            conn.execute(
                "INSERT INTO controller_presence VALUES (%s, NULL, 'online', %s, %s, 1e9)", (mac, since, since)
            )
    return seeded


TABLES = (
    "device_events",
    "component_states",
    "controller_presence",
    "event_counts_hourly",
    "event_counts_daily",
    "event_activity_hourly",
    "event_activity_daily",
    "event_alerts",
)


def remove(conn: psycopg.Connection, macs: tuple[str, ...] = MACS) -> None:
    """Every row of `macs` (default: all of ours) in the event tables and aggregates."""
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE controller_mac = ANY(%s)", (list(macs),))  # noqa: S608 - fixed


# --- what the aggregates must hold, computed from the seeded events ------------------------------------------


@dataclass
class Activity:
    events: int = 0
    access_attempts: int = 0
    credentials: set[str] = field(default_factory=set)
    open_count: int = 0
    open_s: float = 0.0
    longest_open_s: float = 0.0
    outages: int = 0
    outage_s: float = 0.0

    def row(self) -> tuple[int, int, int, int, float, float, int, float]:
        return (
            self.events,
            self.access_attempts,
            len(self.credentials),
            self.open_count,
            round(self.open_s, 6),
            round(self.longest_open_s, 6),
            self.outages,
            round(self.outage_s, 6),
        )


def runs(
    seeded: list[Event], kind: str, state: str, until: datetime
) -> list[tuple[tuple[str, int, str], datetime, datetime]]:
    """(component, start, end) of every maximal run of `state` (an end of `until` while it lasts)."""
    found = []
    by_component: dict[tuple[str, int, str], list[Event]] = defaultdict(list)
    for e in sorted(seeded, key=lambda e: e.time):
        if e.kind == kind and (kind == "presence" or e.component.startswith("door-sensor-")):
            by_component[(e.mac, e.connector, e.component)].append(e)
    for component, items in by_component.items():
        start: datetime | None = None
        for e in items:
            if e.state == state and start is None:
                start = e.time
            elif e.state != state and start is not None:
                found.append((component, start, e.time))
                start = None
        if start is not None:
            found.append((component, start, until))
    return found


def expected_activity(seeded: list[Event], start: datetime, width: timedelta, now: datetime) -> dict:
    """(bucket, mac, connector, component) -> Activity.row() for every bucket of [start, start + width * n)
    touched by the seeded events (runs cut at the bucket's bounds), over the buckets of the seeded day."""
    out: dict[tuple[datetime, str, int, str], Activity] = defaultdict(Activity)
    end = DAY_START + timedelta(days=1)

    def bucket_of(t: datetime) -> datetime:
        return start + width * ((t - start) // width)

    for e in seeded:
        if not DAY_START <= e.time < end:
            continue
        a = out[(bucket_of(e.time), e.mac, e.connector, e.component)]
        a.events += 1
        if e.kind == "access":
            a.access_attempts += 1
            assert e.fingerprint is not None
            a.credentials.add(e.fingerprint)
    for s in with_previous(seeded):
        e = s.event
        if not DAY_START <= e.time < end:
            continue
        key = (bucket_of(e.time), e.mac, e.connector, e.component)
        if e.kind == "state" and e.component.startswith("door-sensor-") and e.state == "open":
            out[key].open_count += s.previous_state != "open"
        if e.kind == "presence" and e.state == "offline":
            out[key].outages += s.previous_state != "offline"
    for kind, state, attr in (("state", "open", "open"), ("presence", "offline", "outage")):
        for (mac, connector, component), run_start, run_end in runs(seeded, kind, state, min(end, now)):
            bucket = DAY_START
            while bucket < end:
                cut = (min(run_end, bucket + width) - max(run_start, bucket)).total_seconds()
                if cut > 0:
                    a = out[(bucket, mac, connector, component)]
                    setattr(a, f"{attr}_s", getattr(a, f"{attr}_s") + cut)
                    if attr == "open":
                        a.longest_open_s = max(a.longest_open_s, cut)
                bucket += width
    return {key: a.row() for key, a in out.items()}


def expected_counts(seeded: list[Event], width: timedelta) -> dict[tuple[datetime, str, int, str, str, str], int]:
    out: dict[tuple[datetime, str, int, str, str, str], int] = defaultdict(int)
    end = DAY_START + timedelta(days=1)
    for e in seeded:
        if DAY_START <= e.time < end:
            bucket = DAY_START + width * ((e.time - DAY_START) // width)
            out[(bucket, e.mac, e.connector, e.component, e.kind, e.state or "")] += 1
    return dict(out)


def held_open_runs(seeded: list[Event], start: datetime, end: datetime, now: datetime) -> dict:
    """(mac, connector, component, run_start) -> held seconds, of the door's open runs overlapping [start, end)
    that lasted longer than HELD_OPEN_S (a run still open: until now)."""
    found = {}
    for (mac, connector, component), run_start, run_end in runs(seeded, "state", "open", now):
        if run_start < end and run_end > start:
            held = (run_end - run_start).total_seconds()
            if held > HELD_OPEN_S:
                found[(mac, connector, component, run_start)] = held
    return found
