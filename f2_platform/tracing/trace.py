"""Where a stored reading or event came from: stored row -> the f2.decoded (or f2.events) record that carried it
(found by its key and time) and the sink batch that committed it (sink_batches) -> the f2.raw record it was
decoded from (a reading: the record of the device's controller, connector and position with the reading's device
time; an event: the controller's record of the event's MQTT topic with its time) -> the processor transaction
that decoded it (the f2.batch header whose raw offset ranges hold that record: the registry and decoder
versions), and when each hop saw it. A reading or event a dead-letter replay stored instead names the replay,
its dead letter and raw record.

Off the hot path: the pipeline keeps one header per processor transaction and one row per sink transaction;
the trace reads Kafka around the reading's time for the rest.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
from confluent_kafka import Consumer, Message

from f2_platform.deadletters.kafka_window import fetch, read_window
from f2_platform.deadletters.letters import payload_digest, shown_payload
from streaming.decoding.decoded_format import KEY, rfc3339_from_us
from streaming.decoding.payload import parse_payload
from streaming.errors import DecodeError
from streaming.kafka import topics
from streaming.kafka.records import header
from streaming.kafka.trace_header import H_BATCH, BatchTrace, parse_batch
from streaming.mqtt.topic import MqttTopic, parse_topic
from streaming.registry_schema import in_schema

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A transaction's records are produced within this span: the batch header (on its first record) lies within it
# before any of its other records.
_BATCH_SPAN = timedelta(seconds=5)
# The usual case, looked at first (a busy topic holds millions of records in the wider windows): a reading
# reaches Kafka within seconds of its device time, and the processor decodes a raw record within a minute.
_NEAR_BEFORE, _NEAR_AFTER, _PROCESSING_LAG = timedelta(seconds=5), timedelta(minutes=1), timedelta(minutes=1)
# Only the payload's timestamp is read here; the size limit is the processor's business.
_ANY_SIZE = 1 << 30
WIRING_SQL = """
SELECT ctl.macaddress, c.connectornumber, p.position
FROM "VtDevice".pins p
JOIN "VtDevice".connectors c ON c.connectorid = p.connectorid
JOIN "VtDevice".devices ctl ON ctl.deviceid = c.controllerid
WHERE p.deviceid = %s
"""

READING_SQL = """
(SELECT "timestamp", value FROM decoded_data
 WHERE device_id = %(d)s AND datapoint_id = %(p)s AND "timestamp" <= %(at)s ORDER BY "timestamp" DESC LIMIT 1)
UNION ALL
(SELECT "timestamp", value FROM decoded_data
 WHERE device_id = %(d)s AND datapoint_id = %(p)s AND "timestamp" > %(at)s ORDER BY "timestamp" LIMIT 1)
"""
EVENT_SQL = """
(SELECT "time", connector, kind, state, mqtt_topic FROM device_events
 WHERE controller_mac = %(m)s AND component = %(c)s AND kind <> 'presence'
   AND (%(n)s::smallint IS NULL OR connector = %(n)s) AND "time" <= %(at)s ORDER BY "time" DESC LIMIT 1)
UNION ALL
(SELECT "time", connector, kind, state, mqtt_topic FROM device_events
 WHERE controller_mac = %(m)s AND component = %(c)s AND kind <> 'presence'
   AND (%(n)s::smallint IS NULL OR connector = %(n)s) AND "time" > %(at)s ORDER BY "time" LIMIT 1)
"""
BATCH_SQL = """
SELECT b.batch_id, b.committed_at, b.readings, b.events
FROM sink_batches b, unnest(b.topics, b.partitions, b.first_offsets, b.last_offsets) AS r(topic, part, first, last)
WHERE b.committed_at >= %(after)s AND r.topic = %(topic)s AND r.part = %(part)s
  AND %(offset)s BETWEEN r.first AND r.last
ORDER BY b.committed_at
"""
REPLAY_SQL = """
SELECT source_topic, source_partition, source_offset, deadletter_partition, deadletter_offset, original_reason,
       controller_mac, mqtt_topic, registry_version, decoder_version, replayed_at, run_id
FROM deadletter_replays
WHERE outcome = 'replayed' AND device_time = %s
ORDER BY replayed_at
"""


@dataclass
class Hop:
    name: str
    at: str | None  # RFC 3339, or None where unknown
    where: str


@dataclass(kw_only=True)
class Trace:
    """What a reading's and an event's trace have in common: the records and hops behind the stored row."""

    asked_at: str
    timestamp: str | None = None  # the stored row's (device) time
    decoded: dict[str, object] | None = None  # the processor's output record: topic, partition, offset
    raw: dict[str, object] | None = None  # partition, offset, mqtt topic, received_at, payload
    registry_version: int | None = None
    decoder_version: str | None = None
    sink_batch: dict[str, object] | None = None
    replays: list[dict[str, object]] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.raw is not None or bool(self.replays)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def as_text(self) -> str:
        return "\n".join(self.origin_lines())

    def origin_lines(self) -> list[str]:
        lines = []
        if self.raw is not None:
            raw = self.raw
            lines.append(
                f"raw record: {topics.RAW} partition {raw['partition']} offset {raw['offset']}"
                f" (key {raw['key']}), MQTT topic {raw['mqtt_topic']}"
            )
            lines.append(f"  payload (sha256 {raw['payload_digest']}): {raw['payload']}")
        if self.decoded is not None:
            dec = self.decoded
            name = "event" if dec["topic"] == topics.EVENTS else "decoded"
            lines.append(f"{name} record: {dec['topic']} partition {dec['partition']} offset {dec['offset']}")
        lines.append(f"registry version: {self.registry_version if self.registry_version is not None else 'unknown'}")
        lines.append(f"decoder version: {self.decoder_version or 'unknown'}")
        if self.sink_batch is not None:
            lines.append(f"sink batch: {self.sink_batch['batch_id']} committed {self.sink_batch['committed_at']}")
        for replay in self.replays:
            lines.append(
                f"stored by a dead-letter replay: dead letter {topics.DEADLETTER} partition "
                f"{replay['deadletter_partition']} offset {replay['deadletter_offset']} ({replay['original_reason']}),"
                f" raw record {replay['source_topic']} partition {replay['source_partition']} offset "
                f"{replay['source_offset']}, MQTT topic {replay['mqtt_topic']}, registry version "
                f"{replay['registry_version']}, replayed {replay['replayed_at']} (run {replay['run_id']})"
            )
        if self.hops:
            lines.append("hops:")
            lines += [f"  {h.name:<22} {h.at or '-':<32} {h.where}" for h in self.hops]
        lines += [f"note: {n}" for n in self.notes]
        return lines


@dataclass(kw_only=True)
class ReadingTrace(Trace):
    device_id: int
    datapoint_id: int
    value: float | None = None

    def as_text(self) -> str:
        lines = [f"reading: device {self.device_id}, datapoint {self.datapoint_id}"]
        if self.timestamp is None:
            lines.append(f"  no stored reading near {self.asked_at}")
        else:
            lines.append(f"  stored: {self.timestamp} value {self.value!r}")
        return "\n".join(lines + self.origin_lines())


@dataclass(kw_only=True)
class EventTrace(Trace):
    controller_mac: str
    component: str
    connector: int | None = None  # as asked; the stored event's once found
    kind: str | None = None
    state: str | None = None
    mqtt_topic: str | None = None

    def as_text(self) -> str:
        where = f" at J{self.connector}" if self.connector is not None else ""
        lines = [f"event: controller {self.controller_mac}, {self.component}{where}"]
        if self.timestamp is None:
            lines.append(f"  no stored event near {self.asked_at}")
        else:
            state = f", now {self.state}" if self.state is not None else ""
            lines.append(f"  stored: {self.timestamp} {self.kind} event{state}")
        return "\n".join(lines + self.origin_lines())


def _rfc3339(moment: datetime) -> str:
    return rfc3339_from_us((moment - _EPOCH) // timedelta(microseconds=1))


def _kafka_time(ms: int) -> str:
    return _rfc3339(datetime.fromtimestamp(ms / 1000, UTC))


def guess_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (consistent_random: CRC-32 of the key) gives the key."""
    return zlib.crc32(key) % partitions


# Whether a raw record of the traced row's controller is the one: (its MQTT topic, its payload's time in µs).
RawMatch = Callable[[MqttTopic, str, int], bool]


def trace_reading(
    kafka_config: Mapping[str, str],
    timeseries_dsn: str,
    wiring: tuple[str, int, int] | None,
    device_id: int,
    datapoint_id: int,
    at: datetime,
    skew: timedelta = timedelta(minutes=10),
    horizon: timedelta = timedelta(hours=6),
) -> ReadingTrace:
    """The trace of the stored reading of (device, datapoint) nearest to `at`; `wiring` is where the registry
    wires the device (wiring_of), None when it does not.

    Records are looked for from `skew` before the reading's device time (a device clock running ahead) to
    `horizon` after it (a device that buffered its readings sends them later)."""
    trace = ReadingTrace(device_id=device_id, datapoint_id=datapoint_id, asked_at=_rfc3339(at))
    with psycopg.connect(timeseries_dsn, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(READING_SQL, {"d": device_id, "p": datapoint_id, "at": at}).fetchall()
        if not rows:
            trace.notes.append("decoded_data holds no reading of this device and datapoint")
            return trace
        stamp, value = min(rows, key=lambda r: abs(r[0] - at))
        trace.timestamp, trace.value = _rfc3339(stamp), float(value)
        if stamp != at:
            trace.notes.append(f"no reading at exactly {trace.asked_at}: the nearest one is traced")
        trace.hops.append(Hop("device time", trace.timestamp, "the payload's timestamp"))
        config = dict(kafka_config)
        key = KEY % (device_id, datapoint_id)
        marker = b'"timestamp": "' + _rfc3339(stamp).encode() + b'"'
        decoded = _find_output(config, topics.DECODED, key, lambda value: marker in value, stamp, skew, horizon)
        if decoded is None:
            trace.notes.append(
                f"no record of it in {topics.DECODED} between {_rfc3339(stamp - skew)} and "
                f"{_rfc3339(stamp + horizon)} (retention, a wider --horizon, or stored by a replay or reprocessing)"
            )
        elif wiring is None:
            trace.notes.append(f"device {device_id} is not wired in the registry now: its raw record is not looked for")
            _follow_output(config, conn, trace, decoded, None, stamp, skew)
        else:
            mac, connector, position = wiring

            def same_position(topic: MqttTopic, _mqtt_topic: str, stamp_us: int) -> bool:
                return (topic.connector, topic.position, stamp_us) == (connector, position, _us(stamp))

            def missing() -> str:
                return (
                    f"no record of controller {mac} at J{connector} position {position} with this time in "
                    f"{topics.RAW} (retention, or the device was wired elsewhere when it sent)"
                )

            _follow_output(config, conn, trace, decoded, (mac, same_position, missing), stamp, skew)
        _add_replays(config, conn, trace, stamp, lambda row: wiring is None or row["controller_mac"] == wiring[0])
    return trace


def trace_event(
    kafka_config: Mapping[str, str],
    timeseries_dsn: str,
    controller_mac: str,
    component: str,
    at: datetime,
    connector: int | None = None,
    skew: timedelta = timedelta(minutes=10),
    horizon: timedelta = timedelta(hours=6),
) -> EventTrace:
    """The trace of the stored event of a controller's component (door-sensor-1, reader-2, strike-1, ...)
    nearest to `at`, on `connector` when given. Presence events have no raw record of their own (the sink
    derives them from the controllers' heartbeats) and are not traced.

    The events record and the raw record are looked for as for a reading (`trace_reading`)."""
    mac = controller_mac.lower()
    trace = EventTrace(controller_mac=mac, component=component, connector=connector, asked_at=_rfc3339(at))
    with psycopg.connect(timeseries_dsn, autocommit=True, connect_timeout=10) as conn:
        params = {"m": mac, "c": component, "n": connector, "at": at}
        rows = conn.execute(EVENT_SQL, params).fetchall()
        if not rows:
            where = f" at J{connector}" if connector is not None else ""
            trace.notes.append(f"device_events holds no event of {component}{where} of controller {mac}")
            return trace
        stamp, found_connector, kind, state, mqtt_topic = min(rows, key=lambda r: abs(r[0] - at))
        trace.timestamp, trace.connector, trace.kind, trace.state = _rfc3339(stamp), found_connector, kind, state
        trace.mqtt_topic = mqtt_topic
        if stamp != at:
            trace.notes.append(f"no event at exactly {trace.asked_at}: the nearest one is traced")
        trace.hops.append(Hop("device time", trace.timestamp, "the payload's timestamp"))
        config = dict(kafka_config)
        wanted = (_rfc3339(stamp), found_connector, component, kind)

        def same_event(value: bytes) -> bool:
            try:
                record = orjson.loads(value)
            except orjson.JSONDecodeError:
                return False
            return (record.get("time"), record.get("connector"), record.get("component"), record.get("kind")) == wanted

        output = _find_output(config, topics.EVENTS, mac.encode(), same_event, stamp, skew, horizon)
        if output is None:
            trace.notes.append(
                f"no record of it in {topics.EVENTS} between {_rfc3339(stamp - skew)} and "
                f"{_rfc3339(stamp + horizon)} (retention, a wider --horizon, or stored by a replay)"
            )
        else:

            def same_message(_topic: MqttTopic, raw_topic: str, stamp_us: int) -> bool:
                return raw_topic == mqtt_topic and stamp_us == _us(stamp)

            def missing() -> str:
                return f"no record of controller {mac} on {mqtt_topic} with this time in {topics.RAW} (retention)"

            _follow_output(config, conn, trace, output, (mac, same_message, missing), stamp, skew)
        _add_replays(
            config,
            conn,
            trace,
            stamp,
            lambda row: row["controller_mac"] == mac and row["mqtt_topic"] == mqtt_topic,
        )
    return trace


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


_REPLAY_COLUMNS = (
    "source_topic",
    "source_partition",
    "source_offset",
    "deadletter_partition",
    "deadletter_offset",
    "original_reason",
    "controller_mac",
    "mqtt_topic",
    "registry_version",
    "decoder_version",
    "replayed_at",
    "run_id",
)


def _add_replays(
    config: dict[str, str],
    conn: psycopg.Connection,
    trace: Trace,
    stamp: datetime,
    ours: Callable[[dict[str, object]], bool],
) -> None:
    """The dead-letter replays that stored a row of this time (`ours` tells this row's from another's)."""
    for row in conn.execute(REPLAY_SQL, (stamp,)).fetchall():
        replay = dict(zip(_REPLAY_COLUMNS, row, strict=True))
        if not ours(replay):
            continue
        replay["replayed_at"] = _rfc3339(row[10])
        trace.replays.append(replay)
    if trace.replays and trace.raw is None:
        _follow_replay(config, trace)


def _find_output(
    config: dict[str, str],
    topic: str,
    key: bytes,
    matches: Callable[[bytes], bool],
    stamp: datetime,
    skew: timedelta,
    horizon: timedelta,
) -> Message | None:
    """The record of `topic` with this key whose value `matches`: near the device time first, in the partition
    the key goes to first."""
    count = _partition_count(config, topic)
    guess = guess_partition(key, count)
    windows = [(stamp - _NEAR_BEFORE, stamp + _NEAR_AFTER), (stamp - skew, stamp + horizon)]
    for start, end in windows:
        for partitions in ([guess], [p for p in range(count) if p != guess]):
            for batch in read_window(config, topic, start, end, partitions=partitions):
                for m in batch:
                    if m.key() == key and matches(m.value() or b""):
                        return m
    return None


def _follow_output(
    config: dict[str, str],
    conn: psycopg.Connection,
    trace: Trace,
    output: Message,
    origin: tuple[str, RawMatch, Callable[[], str]] | None,
    stamp: datetime,
    skew: timedelta,
) -> None:
    """From the processor's output record to the raw record (`origin`: the controller, which of its records is
    the one, and what to say when none is) and its transaction's header, and to the sink batch."""
    processed_ms = output.timestamp()[1]
    processed = datetime.fromtimestamp(processed_ms / 1000, UTC)
    topic = output.topic() or ""
    trace.decoded = {
        "topic": topic,
        "partition": output.partition(),
        "offset": output.offset(),
        "processed_at": _kafka_time(processed_ms),
    }
    candidates: list[Message] = []
    if origin is not None:
        mac, matches, missing = origin
        end = processed + timedelta(seconds=1)
        candidates = _raw_candidates(config, mac, matches, processed - _PROCESSING_LAG, end) or _raw_candidates(
            config, mac, matches, stamp - skew, end
        )
        if not candidates:
            trace.notes.append(missing())
    batches = _batch_headers(config, processed, timedelta(seconds=1)) if candidates else []
    if candidates and not any(b.holds(r.partition() or 0, r.offset() or 0) for b in batches for r in candidates):
        batches = _batch_headers(config, processed, _BATCH_SPAN)
    chosen: Message | None = None
    batch: BatchTrace | None = None
    for raw in candidates:
        holding = [b for b in batches if b.holds(raw.partition() or 0, raw.offset() or 0)]
        if holding:
            chosen, batch = raw, holding[-1]
            break
    if chosen is None and candidates:
        chosen = candidates[0]
        trace.notes.append(
            f"no {H_BATCH} header of a processor transaction holds the raw record (a processor older than the "
            "trace): the registry and decoder versions are unknown"
        )
    if chosen is not None:
        _describe_raw(trace, chosen)
        if len(candidates) > 1:
            trace.notes.append(
                f"{len(candidates)} raw records carry this row (a redelivery); the one the transaction decoded is shown"
            )
    if batch is not None:
        trace.registry_version, trace.decoder_version = batch.registry_version, batch.decoder_version
        trace.decoded["transaction_raw_ranges"] = [list(r) for r in batch.ranges]
    trace.hops.append(Hop("processor", _kafka_time(processed_ms), f"{topic} record"))
    rows = conn.execute(
        BATCH_SQL,
        {
            "after": processed - timedelta(minutes=1),
            "topic": topic,
            "part": output.partition(),
            "offset": output.offset(),
        },
    ).fetchall()
    if rows:
        batch_id, committed_at, readings, events = rows[-1]
        trace.sink_batch = {
            "batch_id": batch_id,
            "committed_at": _rfc3339(committed_at),
            "readings": readings,
            "events": events,
            "batches_holding_it": len(rows),
        }
        trace.hops.append(Hop("sink commit", _rfc3339(committed_at), "sink_batches"))
    else:
        trace.notes.append(f"no sink batch record holds the {topic} record (a sink older than the trace, or pruned)")


def _raw_candidates(
    config: dict[str, str], mac: str, matches: RawMatch, start: datetime, end: datetime
) -> list[Message]:
    """f2.raw records of the controller that `matches` accepts, received between `start` and `end`: in the
    partition the controller's key goes to, else in any."""
    key = mac.encode()
    count = _partition_count(config, topics.RAW)
    guess = guess_partition(key, count)
    for partitions in ([guess], [p for p in range(count) if p != guess]):
        found = []
        for batch in read_window(config, topics.RAW, start, end, partitions=partitions):
            for m in batch:
                if m.key() != key:
                    continue
                mqtt_topic = header(m.headers(), topics.H_MQTT_TOPIC) or ""
                try:
                    topic = parse_topic(mqtt_topic)
                    payload = parse_payload(m.value() or b"", _ANY_SIZE)
                except DecodeError:
                    continue
                if matches(topic, mqtt_topic, payload.timestamp_us):
                    found.append(m)
        if found:
            return found
    return []


def _batch_headers(config: dict[str, str], processed: datetime, before: timedelta) -> list[BatchTrace]:
    """The batch headers of the processor transactions written shortly before `processed`, in every partition:
    on a transaction's first f2.decoded record, or its first f2.events record when it decoded no reading."""
    out = []
    for topic in (topics.DECODED, topics.EVENTS):
        for batch in read_window(config, topic, processed - before, processed + timedelta(seconds=1)):
            for m in batch:
                text = header(m.headers(), H_BATCH)
                if text is None:
                    continue
                try:
                    out.append(parse_batch(text))
                except ValueError:
                    continue
    return out


def _partition_count(config: dict[str, str], topic: str) -> int:
    probe = Consumer({**config, "group.id": "f2-trace-probe", "log_level": "4"})
    try:
        return len(probe.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        probe.close()


def wiring_of(registry_dsn: str, registry_schema: str, device_id: int) -> tuple[str, int, int] | None:
    """(controller MAC, connector, position) where the registry wires the device now."""
    with psycopg.connect(registry_dsn, autocommit=True, connect_timeout=10) as reg:
        row = reg.execute(in_schema(WIRING_SQL, registry_schema), (device_id,)).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), int(row[2]))


def _describe_raw(trace: Trace, raw: Message) -> None:
    headers = raw.headers()
    mqtt_topic = header(headers, topics.H_MQTT_TOPIC)
    value = raw.value() or b""
    key = raw.key()
    trace.raw = {
        "partition": raw.partition(),
        "offset": raw.offset(),
        "key": key.decode("ascii", errors="replace") if isinstance(key, bytes) else key,
        "mqtt_topic": mqtt_topic,
        "received_at": header(headers, topics.H_RECEIVED_AT),
        "appended_at": _kafka_time(raw.timestamp()[1]),
        "payload_digest": payload_digest(value),
        "payload": shown_payload(mqtt_topic, value),
        "retained": True,
    }
    trace.hops.append(Hop("bridge received", trace.raw["received_at"], f"MQTT {mqtt_topic}"))  # type: ignore[arg-type]
    trace.hops.append(Hop("in f2.raw", trace.raw["appended_at"], "raw record's Kafka timestamp"))  # type: ignore[arg-type]


def _follow_replay(config: dict[str, str], trace: Trace) -> None:
    replay = trace.replays[-1]
    trace.registry_version = replay["registry_version"]  # type: ignore[assignment]
    trace.decoder_version = replay["decoder_version"]  # type: ignore[assignment]
    coords = (int(replay["source_partition"]), int(replay["source_offset"]))  # type: ignore[call-overload]
    raw = fetch(config, topics.RAW, [coords]).get(coords)
    if raw is not None:
        _describe_raw(trace, raw)
    trace.hops.append(Hop("replayed", str(replay["replayed_at"]), f"dead-letter replay run {replay['run_id']}"))


def trace_json(trace: Trace) -> str:
    return json.dumps(trace.as_dict(), indent=2, default=str)
