"""Reads what each hop holds for one receive hour into the reconciliation's HopData: the bridges' counts,
the hour's raw records (re-decoded with the current registry), the processor's committed offsets, dead
letters, f2.decoded and f2.events (read_committed), and the rows of decoded_data and device_events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from confluent_kafka import Message

from f2_platform.defs.reprocessing.raw_reader import read_topic_window
from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.reconciliation.compare import HopData
from f2_platform.reconciliation.model import EventKey, RawOutcome, ReadingKey
from f2_platform.reconciliation.outcome import event_key, raw_outcome, reading_key
from f2_platform.reconciliation.settings import ReconciliationSettings
from streaming.bridge_counts import decode_counts, hour_of
from streaming.decoding.topology import ControllerTopology
from streaming.kafka import topics
from streaming.kafka.records import header
from streaming.settings import ProcessorSettings

READER_GROUP = "f2-dagster-reconcile"
_CHUNK = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Gathered:
    data: HopData
    registry_versions: set[int] = field(default_factory=set)
    unreadable_counts: int = 0  # records of f2.bridge.counts that are not counts records (never written by a bridge)


def hour_text(hour_start: datetime) -> str:
    return hour_start.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _received_hour(record: Message) -> str:
    received = header(record.headers(), topics.H_RECEIVED_AT)
    if received is not None:
        return hour_of(received)
    # Not written by a bridge: its Kafka timestamp stands in for the receive time.
    _, timestamp_ms = record.timestamp()
    return (_EPOCH + timedelta(milliseconds=timestamp_ms)).strftime("%Y-%m-%dT%H")


def _coordinates(record: Message) -> tuple[int, int]:
    partition, offset = record.partition(), record.offset()
    assert partition is not None and offset is not None  # consumed records carry them
    return partition, offset


def _window(
    kafka: KafkaAdminResource, topic: str, since: datetime, until: datetime, committed_only: bool
) -> Iterator[Message]:
    for batch in read_topic_window(kafka, topic, since, until, committed_only, group=READER_GROUP):
        yield from batch


def gather(
    hour_start: datetime,
    kafka: KafkaAdminResource,
    timescale: TimescaleResource,
    registry: RegistryResource,
    settings: ReconciliationSettings,
) -> Gathered:
    hour = hour_text(hour_start)
    hour_end = hour_start + timedelta(hours=1)
    # A record's Kafka timestamp is a few milliseconds after its receive time, later while the producer's
    # queue is full: look a minute before the hour and the margin after it.
    raw_since, raw_until = hour_start - timedelta(minutes=1), hour_end + timedelta(minutes=settings.raw_margin_minutes)
    outputs_until = hour_end + timedelta(hours=settings.processing_window_hours)

    # First the processor's committed offsets: its outputs of every record below them were committed with
    # them, so the outputs read afterwards hold them all.
    processed = kafka.committed_offsets(topics.GROUP_PROCESSOR, topics.RAW)
    counts: Counter[str] = Counter()
    unreadable = 0
    for record in _window(kafka, topics.BRIDGE_COUNTS, raw_since, raw_until, committed_only=False):
        try:
            batch = decode_counts(record.value() or b"")
        except ValueError:
            unreadable += 1
            continue
        if batch.hour == hour:
            counts.update(batch.counts)

    store = registry.store()
    versions: set[int] = set()
    topologies: dict[str, ControllerTopology | None] = {}

    def lookup(mac: str) -> ControllerTopology | None:
        # One registry read per controller and run: the whole hour is decoded with the same registry.
        if mac not in topologies:
            version, topologies[mac] = store.load(mac)
            versions.add(version)
        return topologies[mac]

    max_payload = ProcessorSettings().max_payload_bytes
    outcomes: list[RawOutcome] = []
    try:
        for record in _window(kafka, topics.RAW, raw_since, raw_until, committed_only=False):
            if _received_hour(record) != hour:
                continue
            partition, offset = record.partition(), record.offset()
            assert partition is not None and offset is not None
            key = record.key()
            outcomes.append(
                raw_outcome(
                    partition,
                    offset,
                    key if isinstance(key, bytes) else None,
                    header(record.headers(), topics.H_MQTT_TOPIC),
                    record.value() or b"",
                    lookup,
                    max_payload,
                )
            )
        if not versions:
            versions.add(store.version())
    finally:
        store.close()

    coordinates = {(o.partition, o.offset) for o in outcomes}
    expected_readings: set[ReadingKey] = set().union(*(o.readings for o in outcomes)) if outcomes else set()
    expected_events: set[EventKey] = set().union(*(o.events for o in outcomes)) if outcomes else set()

    dead_letters: dict[tuple[int, int], str] = {}
    sink_dead_readings: dict[ReadingKey, str] = {}
    sink_dead_events: dict[EventKey, str] = {}
    for record in _window(kafka, topics.DEADLETTER, hour_start, outputs_until, committed_only=True):
        headers = record.headers()
        source, reason = header(headers, topics.H_SOURCE_TOPIC), header(headers, topics.H_REASON) or "unknown"
        if source == topics.RAW:
            try:
                coordinate = (
                    int(header(headers, topics.H_SOURCE_PARTITION) or -1),
                    int(header(headers, topics.H_SOURCE_OFFSET) or -1),
                )
            except ValueError:
                continue
            if coordinate in coordinates:
                dead_letters[coordinate] = reason
        elif source == topics.DECODED:
            reading = reading_key(record.value() or b"")
            if reading is not None and reading in expected_readings:
                sink_dead_readings[reading] = reason
        elif source == topics.EVENTS:
            event = event_key(record.value() or b"")
            if event is not None and event in expected_events:
                sink_dead_events[event] = reason

    # Where each expected reading and event is in its topic (partition, lowest offset): once the sink's
    # committed offsets are read, one below them is stored (the sink commits after the database), one at or
    # past them is still pending in the sink.
    decoded_at: dict[ReadingKey, tuple[int, int]] = {}
    if expected_readings:
        for record in _window(kafka, topics.DECODED, hour_start, outputs_until, committed_only=True):
            reading = reading_key(record.value() or b"")
            if reading is not None and reading in expected_readings and reading not in decoded_at:
                decoded_at[reading] = _coordinates(record)
    events_at: dict[EventKey, tuple[int, int]] = {}
    if expected_events:
        for record in _window(kafka, topics.EVENTS, hour_start, outputs_until, committed_only=True):
            event = event_key(record.value() or b"")
            if event is not None and event in expected_events and event not in events_at:
                events_at[event] = _coordinates(record)
    rescued = [o for o in outcomes if (o.partition, o.offset) in dead_letters and o.reason is None]
    rescue_readings: set[ReadingKey] = set().union(*(o.readings for o in rescued)) if rescued else set()
    rescue_events: set[EventKey] = set().union(*(o.events for o in rescued)) if rescued else set()
    sink_decoded = kafka.committed_offsets(topics.GROUP_SINK, topics.DECODED) if decoded_at else {}
    sink_events = kafka.committed_offsets(topics.GROUP_SINK, topics.EVENTS) if events_at else {}

    data = HopData(
        outcomes=outcomes,
        bridge_counts=dict(counts),
        processed_below={p: (o or 0) for p, o in processed.items()},
        dead_letters=dead_letters,
        decoded_topic=set(decoded_at),
        events_topic=set(events_at),
        # Also the outputs of dead-lettered records that decode now: stored already (a replay) or rescuable.
        stored_readings=stored_readings(timescale, set(decoded_at) | rescue_readings),
        stored_events=stored_events(timescale, set(events_at) | rescue_events),
        sink_dead_readings=sink_dead_readings,
        sink_dead_events=sink_dead_events,
        sink_pending_readings={k for k, (p, o) in decoded_at.items() if o >= (sink_decoded.get(p) or 0)},
        sink_pending_events={k for k, (p, o) in events_at.items() if o >= (sink_events.get(p) or 0)},
    )
    return Gathered(data, versions, unreadable)


def _moment(timestamp_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=timestamp_us)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_STORED_READINGS = """
SELECT d."timestamp", d.device_id, d.datapoint_id
FROM unnest(%s::timestamptz[], %s::integer[], %s::integer[]) AS k(t, device_id, datapoint_id)
JOIN decoded_data d ON d."timestamp" = k.t AND d.device_id = k.device_id AND d.datapoint_id = k.datapoint_id
"""
_STORED_EVENTS = """
SELECT e."time", e.controller_mac, e.connector, e.component, e.kind
FROM unnest(%s::timestamptz[], %s::text[], %s::smallint[], %s::text[], %s::text[])
    AS k(t, controller_mac, connector, component, kind)
JOIN device_events e ON e."time" = k.t AND e.controller_mac = k.controller_mac AND e.connector = k.connector
    AND e.component = k.component AND e.kind = k.kind
"""


def stored_readings(timescale: TimescaleResource, keys: set[ReadingKey]) -> set[ReadingKey]:
    """Which of `keys` are rows of decoded_data (by its primary key)."""
    found: set[ReadingKey] = set()
    ordered = sorted(keys)
    with timescale.connect() as conn:
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            rows = conn.execute(
                _STORED_READINGS,
                ([_moment(t) for t, _, _ in chunk], [d for _, d, _ in chunk], [p for _, _, p in chunk]),
            ).fetchall()
            found.update((_micros(t), int(d), int(p)) for t, d, p in rows)
    return found


def stored_events(timescale: TimescaleResource, keys: set[EventKey]) -> set[EventKey]:
    """Which of `keys` are rows of device_events (by its primary key)."""
    found: set[EventKey] = set()
    ordered = sorted(keys)
    with timescale.connect() as conn:
        for i in range(0, len(ordered), _CHUNK):
            chunk = ordered[i : i + _CHUNK]
            rows = conn.execute(
                _STORED_EVENTS,
                (
                    [_moment(k[0]) for k in chunk],
                    [k[1] for k in chunk],
                    [k[2] for k in chunk],
                    [k[3] for k in chunk],
                    [k[4] for k in chunk],
                ),
            ).fetchall()
            found.update((_micros(t), str(m), int(c), str(p), str(k)) for t, m, c, p, k in rows)
    return found
