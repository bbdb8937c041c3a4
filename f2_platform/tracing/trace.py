"""Where a stored reading came from: stored row -> the f2.decoded record that carried it (and the sink batch
that committed it, sink_batches) -> the f2.raw record it was decoded from (the decoded record's trace header,
streaming/kafka/trace_header.py), with the registry and decoder versions that decoded it and when each hop saw
it. A reading a dead-letter replay stored instead names the replay and its dead letter.

Off the hot path: the pipeline keeps one header per raw record and one row per sink batch; the trace reads
Kafka around the reading's time to find the rest.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from confluent_kafka import Consumer, Message

from f2_platform.deadletters.kafka_window import fetch, read_window
from f2_platform.deadletters.letters import payload_digest, shown_payload
from streaming.decoding.decoded_format import KEY, rfc3339_from_us
from streaming.kafka import topics
from streaming.kafka.records import header
from streaming.kafka.trace_header import H_TRACE, parse_trace

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A frame's readings are written in one produce loop: its first reading (with the header) lies within this
# much of the others' Kafka timestamps.
_SIBLING_SPAN = timedelta(seconds=2)

READING_SQL = """
(SELECT "timestamp", value FROM decoded_data
 WHERE device_id = %(d)s AND datapoint_id = %(p)s AND "timestamp" <= %(at)s ORDER BY "timestamp" DESC LIMIT 1)
UNION ALL
(SELECT "timestamp", value FROM decoded_data
 WHERE device_id = %(d)s AND datapoint_id = %(p)s AND "timestamp" > %(at)s ORDER BY "timestamp" LIMIT 1)
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


@dataclass
class ReadingTrace:
    device_id: int
    datapoint_id: int
    asked_at: str
    timestamp: str | None = None  # the stored reading's (device) time
    value: float | None = None
    decoded: dict[str, object] | None = None  # partition, offset, trace header
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
        lines = [f"reading: device {self.device_id}, datapoint {self.datapoint_id}"]
        if self.timestamp is None:
            lines.append(f"  no stored reading near {self.asked_at}")
        else:
            lines.append(f"  stored: {self.timestamp} value {self.value!r}")
        if self.raw is not None:
            raw = self.raw
            lines.append(
                f"raw record: {topics.RAW} partition {raw['partition']} offset {raw['offset']}"
                f" (key {raw['key']}), MQTT topic {raw['mqtt_topic']}"
            )
            lines.append(f"  payload (sha256 {raw['payload_digest']}): {raw['payload']}")
        if self.decoded is not None:
            dec = self.decoded
            lines.append(f"decoded record: {topics.DECODED} partition {dec['partition']} offset {dec['offset']}")
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
        return "\n".join(lines)


def _rfc3339(moment: datetime) -> str:
    return rfc3339_from_us((moment - _EPOCH) // timedelta(microseconds=1))


def _kafka_time(ms: int) -> str:
    return _rfc3339(datetime.fromtimestamp(ms / 1000, UTC))


def guess_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner (consistent_random: CRC-32 of the key) gives the key."""
    return zlib.crc32(key) % partitions


def trace_reading(
    kafka_config: Mapping[str, str],
    timeseries_dsn: str,
    device_id: int,
    datapoint_id: int,
    at: datetime,
    skew: timedelta = timedelta(minutes=10),
    horizon: timedelta = timedelta(hours=6),
) -> ReadingTrace:
    """The trace of the stored reading of (device, datapoint) nearest to `at`.

    The decoded record is looked for from `skew` before the reading's device time (a device clock running
    ahead) to `horizon` after it (a device that buffered its readings sends them later)."""
    trace = ReadingTrace(device_id, datapoint_id, _rfc3339(at))
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
        decoded = _find_decoded(config, device_id, datapoint_id, stamp, skew, horizon)
        if decoded is None:
            trace.notes.append(
                f"no record of it in {topics.DECODED} between {_rfc3339(stamp - skew)} and "
                f"{_rfc3339(stamp + horizon)} (retention, a wider --horizon, or stored by a replay or reprocessing)"
            )
        else:
            _follow_decoded(config, conn, trace, decoded, device_id, stamp)
        for row in conn.execute(REPLAY_SQL, (stamp,)).fetchall():
            names = (
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
            replay = dict(zip(names, row, strict=True))
            replay["replayed_at"] = _rfc3339(row[10])
            trace.replays.append(replay)
        if trace.replays and trace.raw is None:
            _follow_replay(config, trace)
    return trace


def _find_decoded(
    config: dict[str, str], device_id: int, datapoint_id: int, stamp: datetime, skew: timedelta, horizon: timedelta
) -> Message | None:
    key = KEY % (device_id, datapoint_id)
    marker = b'"timestamp": "' + _rfc3339(stamp).encode() + b'"'
    probe = Consumer({**config, "group.id": "f2-trace-probe", "log_level": "4"})
    try:
        count = len(probe.list_topics(topics.DECODED, timeout=10).topics[topics.DECODED].partitions)
    finally:
        probe.close()
    guess = guess_partition(key, count)
    for partitions in ([guess], [p for p in range(count) if p != guess]):
        for batch in read_window(config, topics.DECODED, stamp - skew, stamp + horizon, partitions=partitions):
            for m in batch:
                if m.key() == key and marker in (m.value() or b""):
                    return m
    return None


def _follow_decoded(
    config: dict[str, str],
    conn: psycopg.Connection,
    trace: ReadingTrace,
    decoded: Message,
    device_id: int,
    stamp: datetime,
) -> None:
    processed_ms = decoded.timestamp()[1]
    trace.decoded = {
        "partition": decoded.partition(),
        "offset": decoded.offset(),
        "processed_at": _kafka_time(processed_ms),
    }
    carrier = decoded if header(decoded.headers(), H_TRACE) else _sibling_with_header(config, decoded, device_id, stamp)
    if carrier is None:
        trace.notes.append(
            f"neither the decoded record nor another reading of its frame carries the {H_TRACE} header "
            "(written by a processor older than the trace)"
        )
    else:
        text = header(carrier.headers(), H_TRACE)
        assert text is not None
        origin = parse_trace(text)
        trace.decoded[H_TRACE] = text
        trace.registry_version, trace.decoder_version = origin.registry_version, origin.decoder_version
        raw = fetch(config, topics.RAW, [(origin.raw_partition, origin.raw_offset)]).get(
            (origin.raw_partition, origin.raw_offset)
        )
        if raw is None:
            trace.notes.append(
                f"the raw record {topics.RAW} partition {origin.raw_partition} offset {origin.raw_offset} is no "
                "longer retained"
            )
            trace.raw = {"partition": origin.raw_partition, "offset": origin.raw_offset, "retained": False}
        else:
            _describe_raw(trace, raw)
    trace.hops.append(Hop("processor", trace.decoded["processed_at"], f"{topics.DECODED} record"))  # type: ignore[arg-type]
    batches = conn.execute(
        BATCH_SQL,
        {
            "after": datetime.fromtimestamp(processed_ms / 1000, UTC) - timedelta(minutes=1),
            "topic": topics.DECODED,
            "part": decoded.partition(),
            "offset": decoded.offset(),
        },
    ).fetchall()
    if batches:
        batch_id, committed_at, readings, events = batches[-1]
        trace.sink_batch = {
            "batch_id": batch_id,
            "committed_at": _rfc3339(committed_at),
            "readings": readings,
            "events": events,
            "batches_holding_it": len(batches),
        }
        trace.hops.append(Hop("sink commit", trace.sink_batch["committed_at"], "sink_batches"))  # type: ignore[arg-type]
    else:
        trace.notes.append("no sink batch record holds the decoded record (a sink older than the trace, or pruned)")


def _sibling_with_header(config: dict[str, str], decoded: Message, device_id: int, stamp: datetime) -> Message | None:
    at = datetime.fromtimestamp(decoded.timestamp()[1] / 1000, UTC)
    prefix = b"%d:" % device_id
    marker = b'"timestamp": "' + _rfc3339(stamp).encode() + b'"'
    for batch in read_window(config, topics.DECODED, at - _SIBLING_SPAN, at + _SIBLING_SPAN):
        for m in batch:
            key = m.key()
            if (
                isinstance(key, bytes)
                and key.startswith(prefix)
                and marker in (m.value() or b"")
                and header(m.headers(), H_TRACE)
            ):
                return m
    return None


def _describe_raw(trace: ReadingTrace, raw: Message) -> None:
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


def _follow_replay(config: dict[str, str], trace: ReadingTrace) -> None:
    replay = trace.replays[-1]
    trace.registry_version = replay["registry_version"]  # type: ignore[assignment]
    trace.decoder_version = replay["decoder_version"]  # type: ignore[assignment]
    coords = (int(replay["source_partition"]), int(replay["source_offset"]))  # type: ignore[call-overload]
    raw = fetch(config, topics.RAW, [coords]).get(coords)
    if raw is not None:
        _describe_raw(trace, raw)
    trace.hops.append(Hop("replayed", str(replay["replayed_at"]), f"dead-letter replay run {replay['run_id']}"))


def trace_json(trace: ReadingTrace) -> str:
    return json.dumps(trace.as_dict(), indent=2, default=str)
