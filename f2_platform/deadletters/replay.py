"""Replaying dead letters once the registry would decode them: each dead letter of a window (optionally of
some reasons or controllers) is decoded again with the current registry through the processor's own per-record
step (streaming/decoding/record.py), and what now decodes is stored through the sink's write path
(streaming/sink/writer.store_batch: readings into decoded_data and latest_values, events into device_events),
in the same transaction as its row in deadletter_replays. A dead letter whose row says `replayed` is never
replayed again; what still fails keeps a `still-failing` row with the reason it fails for now.

The dead letter carries the record's payload, except on reader topics, where the processor redacted it: those
are read again from f2.raw at their source coordinates while the raw topic still holds them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from f2_platform.deadletters.kafka_window import fetch, read_window
from f2_platform.deadletters.letters import DeadLetter, dead_letter, payload_digest
from f2_platform.deadletters.replay_sql import LOCK_SQL, RECORD_SQL, STATUS_SQL, UNLOCK_SQL
from f2_platform.errors import F2Error
from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.events import Event, encode_event
from streaming.decoding.payload import parse_payload
from streaming.decoding.record import Decoded, decode_record
from streaming.decoding.topology import ControllerTopology, Reading
from streaming.decoding.version import DECODER_VERSION
from streaming.errors import DecodeError
from streaming.kafka import topics
from streaming.mqtt.topic import is_reader
from streaming.sink.event_rows import parse_event
from streaming.sink.rows import copy_text
from streaming.sink.sql import STAGING_DDL
from streaming.sink.writer import store_batch

# (registry version, topology or None), as RegistryStore.load gives it.
VersionedLoader = Callable[[str], tuple[int, ControllerTopology | None]]
STILL_FAILING, REPLAYED = "still-failing", "replayed"


class ReplayBusy(F2Error):
    """Another replay holds the lock."""


@dataclass(frozen=True)
class ReplayFilter:
    start: datetime
    end: datetime | None = None
    reasons: frozenset[str] = frozenset()
    controllers: frozenset[str] = frozenset()

    def wants(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        return not self.controllers or letter.controller in self.controllers


@dataclass
class Failure:
    deadletter: str  # partition:offset in f2.deadletter
    source: str
    controller: str | None
    original_reason: str
    reason: str
    detail: str
    payload_digest: str


@dataclass
class ReplayReport:
    dry_run: bool
    read: int = 0  # dead letters in the window
    matched: int = 0  # ... of the reasons and controllers asked for
    not_replayable: Counter[str] = field(default_factory=Counter)  # the sink's dead letters, by reason
    already_replayed: int = 0
    replayed: int = 0
    readings: int = 0
    events: int = 0
    still_failing: Counter[str] = field(default_factory=Counter)  # by the reason it fails for now
    failures: list[Failure] = field(default_factory=list)  # the first few, for the report
    registry_versions: set[int] = field(default_factory=set)
    decoder_version: str = DECODER_VERSION

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "dead_letters_read": self.read,
            "matched": self.matched,
            "not_replayable": dict(self.not_replayable),
            "already_replayed": self.already_replayed,
            "replayed": self.replayed,
            "readings_stored": self.readings,
            "events_stored": self.events,
            "still_failing": dict(sorted(self.still_failing.items())),
            "failure_samples": [f.__dict__ for f in self.failures],
            "registry_versions": sorted(self.registry_versions),
            "decoder_version": self.decoder_version,
        }


@dataclass
class _Outcome:
    letter: DeadLetter
    decoded: Decoded | None
    reason: str | None = None
    detail: str | None = None
    version: int | None = None
    device_time_us: int | None = None


class Replayer:
    """One replay run; `load` reads the registry (its version and a controller's topology), once per controller."""

    def __init__(
        self,
        kafka_config: Mapping[str, str],
        timeseries_dsn: str,
        load: VersionedLoader,
        max_payload_bytes: int,
        run_id: str = "cli",
        failure_samples: int = 20,
        chunk: int = 2000,
    ) -> None:
        self.kafka_config = dict(kafka_config)
        self.timeseries_dsn = timeseries_dsn
        self._load = load
        self.max_payload_bytes = max_payload_bytes
        self.run_id = run_id
        self.failure_samples = failure_samples
        self.chunk = chunk
        self._topologies: dict[str, tuple[int, ControllerTopology | None]] = {}

    def _topology(self, mac: str) -> tuple[int, ControllerTopology | None]:
        if mac not in self._topologies:
            self._topologies[mac] = self._load(mac)
        return self._topologies[mac]

    def run(self, window: ReplayFilter, dry_run: bool = False) -> ReplayReport:
        report = ReplayReport(dry_run)
        with psycopg.connect(self.timeseries_dsn, autocommit=True, connect_timeout=10) as conn:
            locked = conn.execute(LOCK_SQL).fetchone()
            if not (locked and locked[0]):
                raise ReplayBusy("another dead-letter replay is running (f2 deadletters replay or the Dagster job)")
            try:
                conn.execute(STAGING_DDL)
                pending: list[DeadLetter] = []
                for batch in read_window(self.kafka_config, topics.DEADLETTER, window.start, window.end):
                    for message in batch:
                        try:
                            letter = dead_letter(message)
                        except ValueError:
                            report.not_replayable["not-a-dead-letter"] += 1
                            continue
                        report.read += 1
                        if not window.wants(letter):
                            continue
                        report.matched += 1
                        if not letter.replayable:
                            report.not_replayable[letter.reason] += 1
                            continue
                        pending.append(letter)
                    if len(pending) >= self.chunk:
                        self._replay_chunk(conn, pending, report, dry_run)
                        pending = []
                self._replay_chunk(conn, pending, report, dry_run)
            finally:
                conn.execute(UNLOCK_SQL)
        return report

    def _replay_chunk(
        self, conn: psycopg.Connection, letters: list[DeadLetter], report: ReplayReport, dry_run: bool
    ) -> None:
        if not letters:
            return
        done = self._replayed_already(conn, letters)
        todo = []
        seen: set[tuple[str, int, int]] = set()
        for letter in letters:
            # The same source record dead-lettered twice (a redelivery): one replay.
            if letter.source in done or letter.source in seen:
                report.already_replayed += 1
                continue
            seen.add(letter.source)
            todo.append(letter)
        raw = self._raw_payloads([x for x in todo if x.mqtt_topic is not None and is_reader(x.mqtt_topic)])
        outcomes = [self._decode(letter, raw.get((letter.source_partition, letter.source_offset))) for letter in todo]
        readings: list[Reading] = []
        events: list[Event] = []
        for outcome in outcomes:
            if outcome.version is not None:
                report.registry_versions.add(outcome.version)
            if outcome.decoded is None:
                assert outcome.reason is not None
                report.still_failing[outcome.reason] += 1
                if len(report.failures) < self.failure_samples:
                    letter = outcome.letter
                    report.failures.append(
                        Failure(
                            f"{letter.partition}:{letter.offset}",
                            ":".join(map(str, letter.source)),
                            letter.controller,
                            letter.reason,
                            outcome.reason,
                            outcome.detail or "",
                            payload_digest(letter.value),
                        )
                    )
                continue
            report.replayed += 1
            readings.extend(outcome.decoded.readings)
            events.extend(outcome.decoded.events)
        report.readings += len(readings)
        report.events += len(events)
        if dry_run:
            return
        rows = [(rfc3339_from_us(r.timestamp_us), r.device_id, r.datapoint_id, float(r.value)) for r in readings]
        event_rows = [parse_event(encode_event(e)) for e in events]
        with conn.transaction():
            store_batch(conn, copy_text(rows), False, event_rows)
            with conn.cursor() as cur:
                cur.executemany(RECORD_SQL, [self._record(o) for o in outcomes])

    def _replayed_already(self, conn: psycopg.Connection, letters: Iterable[DeadLetter]) -> set[tuple[str, int, int]]:
        sources = [x.source for x in letters]
        columns = [list(c) for c in zip(*sources, strict=True)]
        rows = conn.execute(STATUS_SQL, columns).fetchall()
        return {(t, p, o) for t, p, o, outcome in rows if outcome == REPLAYED}

    def _raw_payloads(self, letters: list[DeadLetter]) -> dict[tuple[int, int], bytes]:
        """Reader records as the bridge wrote them (credential fingerprints): the dead letter has them redacted."""
        found = fetch(self.kafka_config, topics.RAW, [(x.source_partition, x.source_offset) for x in letters])
        return {coords: m.value() or b"" for coords, m in found.items()}

    def _decode(self, letter: DeadLetter, raw_value: bytes | None) -> _Outcome:
        value = letter.value if raw_value is None else raw_value
        versions: list[int] = []

        def lookup(mac: str) -> ControllerTopology | None:
            version, topology = self._topology(mac)
            versions.append(version)
            return topology

        device_time_us = _device_time_us(value, self.max_payload_bytes)
        try:
            decoded = decode_record(letter.mqtt_topic, value, lookup, self.max_payload_bytes)
        except DecodeError as exc:
            version = versions[-1] if versions else None
            return _Outcome(letter, None, exc.reason, exc.detail, version, device_time_us)
        return _Outcome(letter, decoded, None, None, versions[-1] if versions else None, device_time_us)

    def _record(self, o: _Outcome) -> tuple[object, ...]:
        x = o.letter
        device_time = None if o.device_time_us is None else rfc3339_from_us(o.device_time_us)
        return (
            *x.source,
            x.partition,
            x.offset,
            x.at,
            x.reason,
            x.controller,
            x.mqtt_topic,
            STILL_FAILING if o.decoded is None else REPLAYED,
            o.reason,
            o.detail,
            0 if o.decoded is None else len(o.decoded.readings),
            0 if o.decoded is None else len(o.decoded.events),
            device_time,
            o.version,
            DECODER_VERSION,
            self.run_id,
        )


def _device_time_us(value: bytes, max_payload_bytes: int) -> int | None:
    try:
        return parse_payload(value, max_payload_bytes).timestamp_us
    except DecodeError:
        return None


def replay_status(dsn: str, letters: list[DeadLetter]) -> dict[tuple[str, int, int], str]:
    """Each letter's source record -> its replay outcome, where a replay looked at it."""
    if not letters:
        return {}
    columns = [list(c) for c in zip(*(x.source for x in letters), strict=True)]
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(STATUS_SQL, columns).fetchall()
    return {(t, p, o): outcome for t, p, o, outcome in rows}


def read_letters(kafka_config: Mapping[str, str], window: ReplayFilter) -> list[DeadLetter]:
    """The window's dead letters of the reasons and controllers asked for."""
    out = []
    for batch in read_window(kafka_config, topics.DEADLETTER, window.start, window.end):
        for message in batch:
            try:
                letter = dead_letter(message)
            except ValueError:
                continue
            if window.wants(letter):
                out.append(letter)
    return out


def new_run_id() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"
