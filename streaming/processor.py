"""`f2 processor`: raw MQTT records -> decoded readings and events, inside Kafka transactions.

Consume-transform-produce: a batch of raw records becomes decoded readings (f2.decoded and the compacted
f2.latest), access and alarm events and presence heartbeats (f2.events) and dead letters, and the consumer
offsets are committed in the same transaction, so each raw record is reflected exactly once within Kafka. A
record that cannot be decoded is dead-lettered with its reason; a dependency outage (registry down) aborts the
transaction and retries the batch.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import AbstractContextManager, ExitStack
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Gauge

from streaming.decoding.decoded_format import encode_readings
from streaming.decoding.events import SEEN, encode_event, encode_seen, silence_after_s
from streaming.decoding.native import NATIVE, frame_records
from streaming.decoding.record import Resolved, dead_letter_value, resolve_record, status_outputs
from streaming.decoding.topology import ControllerTopology
from streaming.decoding.topology_cache import TopologyCache, connect_redis
from streaming.decoding.topology_store import RegistryListener, RegistryStore
from streaming.decoding.version import DECODER_VERSION
from streaming.errors import DecodeError, TransientError
from streaming.kafka import topics
from streaming.kafka.lag import record_lag
from streaming.kafka.records import Headers, coordinates, dead_letter_headers, first_offsets, header, next_offsets
from streaming.kafka.trace_header import H_BATCH, batch_value
from streaming.runtime.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    CONTROLLER_LAST_SEEN,
    DEAD_LETTERED,
    ERRORS,
    EVENTS_OUT,
    EVENTS_UNREGISTERED,
    MESSAGES_IN,
    MESSAGES_OUT,
)
from streaming.runtime.supervisor import Watchdog, restart_worker
from streaming.settings import ConnectionSettings, PresenceSettings, ProcessorSettings

log = logging.getLogger("f2.processor")
DAEMON = "processor"
_MAC_RE = re.compile(r"[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# The watchdog's deadlines for librdkafka's transactional calls, each well past the call's own timeout: a call
# still inside librdkafka then is hung (F2_PROCESSOR_WATCHDOG_SCALE multiplies them).
HUNG_AFTER_S = {
    "init_transactions": 120.0,  # timeout 60 s
    "send_offsets_to_transaction": 60.0,  # timeout 30 s
    "commit_transaction": 90.0,  # timeout 60 s
    "abort_transaction": 60.0,  # timeout 30 s
}


class Outputs:
    """What one batch produces, gathered before the transaction writes it."""

    __slots__ = ("beats", "dead", "events", "events_by_kind", "readings")

    def __init__(self) -> None:
        self.readings: list[tuple[bytes, bytes]] = []
        self.events: list[tuple[bytes, bytes]] = []
        # (kind, registered) -> events of the batch, for the metrics once the transaction committed.
        self.events_by_kind: Counter[tuple[str, bool]] = Counter()
        # Controllers (record keys) whose presence heartbeat this batch writes, and when it was taken.
        self.beats: dict[bytes, float] = {}
        self.dead: list[tuple[bytes | str | None, bytes | None, Headers, str]] = []


class Processor:
    name = DAEMON

    def __init__(
        self, conn: ConnectionSettings, settings: ProcessorSettings, presence: PresenceSettings | None = None
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.presence = presence or PresenceSettings()
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.registry_dsn = settings.registry_dsn or conn.registry_dsn
        self.store = RegistryStore(self.registry_dsn, schema=conn.registry_schema)
        self.cache = TopologyCache(
            self.store.load,
            connect_redis(conn.redis_url, settings.redis_timeout_s),
            daemon=DAEMON,
            ttl_s=settings.cache_ttl_s,
            local_ttl_s=settings.local_cache_ttl_s,
            negative_ttl_s=settings.negative_cache_ttl_s,
            redis_retry_after_s=settings.redis_retry_after_s,
        )
        self._stop_listener = threading.Event()
        self._backoff = 0.0
        self._assigned: set[int] = set()
        self._last_seen_gauges: dict[bytes, Gauge] = {}
        self._last_seen_at: dict[bytes, float] = {}
        # When each controller's last committed presence heartbeat was taken (time.time()).
        self._beat_at: dict[bytes, float] = {}
        self._collected_at = time.monotonic()
        # An abort that timed out is still in progress in librdkafka: it must be resumed (called again)
        # before any other transactional call, which would otherwise fail with "Conflicting abort_transaction".
        self._abort_pending = False
        # When the first attempt of a still unfinished abort failed (monotonic seconds; 0: none failing).
        self._abort_failing_since = 0.0
        self._in = MESSAGES_IN.labels(DAEMON)
        self._out = MESSAGES_OUT.labels(DAEMON)
        # The next raw offset of each partition after the last committed batch: where the next batch's range
        # starts (records of a partition come in order), so no record is looked at twice to find it.
        self._positions: dict[int, int] = {}

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, stack: ExitStack) -> None:
        if NATIVE:
            log.info("frames are decoded by the native extension (streaming.decoding._frame_records)")
        else:
            log.warning(
                "the native frame decoder is not built: decoding in pure Python, at a fraction of the throughput;"
                " reinstall the project so its build compiles it (make provision; in a checkout"
                " `uv sync --reinstall-package f2-platform`)"
            )
        kafka = self.conn.kafka_config()
        self.producer = Producer(
            {
                **kafka,
                "transactional.id": f"f2-processor-{self.settings.instance_id}",
                "transaction.timeout.ms": self.settings.transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                # A failed delivery fails the transaction's commit: reports of successful ones only cost a
                # callback per record (about a tenth of the processor's CPU).
                "delivery.report.only.error": True,
                "linger.ms": 5,
                "batch.num.messages": 10000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500000,
            }
        )
        # Aborts whatever a previous incarnation with the same transactional id left open.
        self.watchdog = Watchdog()
        with self._guard("init_transactions"):
            self.producer.init_transactions(60)
        self.consumer = Consumer(
            {
                **kafka,
                "group.id": topics.GROUP_PROCESSOR,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "max.poll.interval.ms": 300000,
                "partition.assignment.strategy": "cooperative-sticky",
                # Fuller fetches: a fetch per few records cost the broker more CPU than the records themselves;
                # this waits at most fetch.wait.max.ms for 64 kB (a few hundred frames).
                "fetch.min.bytes": 65536,
                "fetch.wait.max.ms": 25,
            }
        )
        self.consumer.subscribe([topics.RAW], on_assign=self._on_assign, on_revoke=self._on_revoke)
        stack.callback(self.consumer.close)
        listener = RegistryListener(
            self.registry_dsn, self.cache.set_version, self._stop_listener, schema=self.conn.registry_schema
        )
        listener.start()
        stack.callback(self._stop_listener.set)
        stack.callback(self.store.close)

    def step(self) -> None:
        assert self.consumer is not None
        if self._backoff:
            time.sleep(self._backoff)
        # A batch's window starts where the previous collection ended: records that arrived while the previous
        # batch was processed and committed have waited already, and are taken without waiting again.
        window = self.settings.batch_timeout_ms / 1000 - (time.monotonic() - self._collected_at)
        messages = self.consumer.consume(self.settings.batch_size, max(0.0, window))
        self._collected_at = time.monotonic()
        records = [m for m in messages if not self._is_error(m)]
        if not records:
            return
        started = time.perf_counter()
        try:
            self._transact(records)
        except TransientError as exc:
            self._retry_later(records, f"{exc}", "dependency")
            return
        except KafkaException as exc:
            self._on_kafka_exception(records, exc)
            return
        self._backoff = 0.0
        BATCH_SIZE.labels(DAEMON).observe(len(records))
        BATCH_SECONDS.labels(DAEMON).observe(time.perf_counter() - started)

    def drain(self) -> None:
        # Each batch commits before step() returns: nothing is in flight between steps.
        return

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {p.partition for p in partitions}
        for p in partitions:
            self._positions.pop(p.partition, None)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {p.partition for p in partitions}

    def health(self) -> tuple[bool, dict[str, object]]:
        # Called from the HTTP thread: only reads state the run loop keeps, never the Kafka clients.
        return self._backoff < 30, {
            "assigned_partitions": sorted(self._assigned),
            "registry_version": self.cache.version,
            "retrying": self._backoff > 0,
            "native_decoder": NATIVE,
            "decoder_version": DECODER_VERSION,
        }

    # --- the batch -----------------------------------------------------------------------------------------
    def _transact(self, records: list[Message]) -> None:
        outputs = self._process(records)
        offsets = next_offsets(records)
        producer = self.producer
        assert producer is not None and self.consumer is not None
        if self._abort_pending:
            self._resume_abort()
        producer.begin_transaction()
        try:
            # The batch's trace header goes on its first reading, or on its first event when it has none.
            if outputs.readings:
                self._produce_traced(topics.DECODED, outputs.readings, offsets, records)
                self._produce_all(topics.EVENTS, outputs.events)
            elif outputs.events:
                self._produce_traced(topics.EVENTS, outputs.events, offsets, records)
            # The compacted topic keeps one value per key: the batch's last one is all it needs.
            self._produce_all(topics.LATEST, dict(outputs.readings).items())
            for dead_key, dead_value, headers, _ in outputs.dead:
                self._produce(topics.DEADLETTER, dead_key, dead_value, headers)
            # Both calls can hang past their timeouts in librdkafka: the watchdog turns that into a restart.
            with self._guard("send_offsets_to_transaction"):
                producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(), 30)
            with self._guard("commit_transaction"):
                producer.commit_transaction(60)
        except BaseException:
            self._abort()
            raise
        record_lag(self.consumer, DAEMON, offsets)
        self.cache.publish_metrics()
        self._in.inc(len(records))
        self._out.inc(len(outputs.readings))
        for *_, reason in outputs.dead:
            DEAD_LETTERED.labels(DAEMON, reason).inc()
        for (kind, registered), count in outputs.events_by_kind.items():
            EVENTS_OUT.labels(DAEMON, kind).inc(count)
            if not registered:
                EVENTS_UNREGISTERED.labels(DAEMON, kind).inc(count)
        # Only now: a heartbeat of an aborted batch was never written, and the retry must write it again.
        self._beat_at.update(outputs.beats)
        self._positions.update((tp.partition, tp.offset) for tp in offsets)

    def _process(self, records: list[Message]) -> Outputs:
        out = Outputs()
        seen_at = time.time()
        # The last-seen gauges move at most once a second per controller (Prometheus scrapes every 15 s).
        refresh_before = seen_at - 1.0
        last_seen_at = self._last_seen_at
        beat_before = seen_at - self.settings.presence_heartbeat_s
        beat_at = self._beat_at
        beats: dict[bytes, Message] = {}
        max_bytes = self.settings.max_payload_bytes
        readings = out.readings
        lookup = self.cache.get
        for record in records:
            value = record.value() or b""
            key = record.key()
            if isinstance(key, bytes):
                if last_seen_at.get(key, 0.0) < refresh_before:
                    last_seen_at[key] = seen_at
                    self._last_seen(key).set(seen_at)
                # Presence: any record of the controller, also one dead-lettered below, once per heartbeat.
                if beat_at.get(key, 0.0) <= beat_before and key not in beats:
                    beats[key] = record
            mqtt_topic = _mqtt_topic(record.headers())
            try:
                resolved = resolve_record(mqtt_topic, value, lookup, max_bytes)
                topic, payload, device, _ = resolved
                if topic.carries_frame and device is not None:
                    # The hot path: a sensor frame gives readings only, through the native decoder.
                    readings.extend(frame_records(topic, payload, device))
                else:
                    self._status(out, resolved, mqtt_topic)
            except DecodeError as exc:
                headers = dead_letter_headers(exc.reason, exc.detail, *coordinates(record), mqtt_topic)
                out.dead.append((key, dead_letter_value(mqtt_topic, value), headers, exc.reason))
        for key, record in beats.items():
            self._heartbeat(out, key, record, seen_at)
        return out

    def _status(self, out: Outputs, resolved: Resolved, mqtt_topic: str | None) -> None:
        """Readings and events of a status or reader message (both, or a DecodeError and neither)."""
        assert mqtt_topic is not None  # resolve_record refuses a record without one
        decoded = status_outputs(resolved, mqtt_topic)
        out.readings.extend(encode_readings(decoded.readings))
        key = resolved.topic.mac.encode()
        for event in decoded.events:
            out.events.append((key, encode_event(event)))
            out.events_by_kind[(event.kind, event.registered)] += 1

    def _heartbeat(self, out: Outputs, key: bytes, record: Message, seen_at: float) -> None:
        """The controller's presence heartbeat, with the silence after which it counts as offline."""
        mac = key.decode("ascii", errors="replace")
        if not _MAC_RE.fullmatch(mac):
            return  # not a controller's MAC: only the bridge writes f2.raw, and it keys by a valid one or none
        controller: ControllerTopology | None = self.cache.get(mac)
        silence = silence_after_s(controller, self.presence.silent_after_intervals, self.presence.default_silence_s)
        received_us = _received_at_us(record.headers()) or int(seen_at * 1_000_000)
        controller_id = None if controller is None else controller.controller_id
        out.events.append((key, encode_seen(mac, controller_id, received_us, silence)))
        out.events_by_kind[(SEEN, controller is not None)] += 1
        out.beats[key] = seen_at

    def _last_seen(self, key: bytes) -> Gauge:
        gauge = self._last_seen_gauges.get(key)
        if gauge is None:
            mac = key.decode(errors="replace")[:32]
            gauge = self._last_seen_gauges[key] = CONTROLLER_LAST_SEEN.labels(DAEMON, mac)
        return gauge

    def _produce_traced(
        self, topic: str, outputs: list[tuple[bytes, bytes]], offsets: list[TopicPartition], records: list[Message]
    ) -> None:
        """The batch's readings to f2.decoded (or its events to f2.events), the first with the batch's trace
        header: the raw offset ranges the batch decoded and the registry and decoder versions (one header per
        transaction, never per record)."""
        positions = self._positions
        if any(tp.partition not in positions for tp in offsets):
            # A partition's first batch since its assignment: its lowest offset in the batch.
            for tp in first_offsets(records):
                positions.setdefault(tp.partition, tp.offset)
        ranges = [(tp.partition, positions[tp.partition], tp.offset - 1) for tp in offsets]
        key, value = outputs[0]
        self._produce(topic, key, value, [(H_BATCH, batch_value(ranges, self.cache.version, DECODER_VERSION))])
        self._produce_all(topic, outputs[1:])

    def _produce_all(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
        assert self.producer is not None
        produce = self.producer.produce
        for key, value in records:
            try:
                produce(topic, value, key)
            except BufferError:
                self._produce(topic, key, value)

    def _produce(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: Headers | None = None
    ) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.05)

    # --- failures ------------------------------------------------------------------------------------------
    def _abort(self) -> None:
        try:
            self._abort_pending = True
            self._resume_abort()
        except KafkaException as exc:
            log.warning("aborting the transaction failed (%s); it is resumed before the next batch", exc)

    def _resume_abort(self) -> None:
        """Abort the open transaction, or finish an abort that timed out; KafkaException while it cannot.

        An abort that still fails F2_PROCESSOR_ABORT_GIVE_UP_S after its first attempt will not finish: after a broker
        restart librdkafka can keep answering "retry call to resume" for good. The worker then exits for a
        restart: the fresh producer's init_transactions fences this one and aborts its transaction on the
        broker, and the records are read again from the committed offsets.
        """
        assert self.producer is not None
        try:
            with self._guard("abort_transaction"):
                self.producer.abort_transaction(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._STATE:
                now = time.monotonic()
                self._abort_failing_since = self._abort_failing_since or now
                if now - self._abort_failing_since >= self.settings.abort_give_up_s:
                    restart_worker(
                        f"aborting the transaction has failed for {now - self._abort_failing_since:.0f} s ({exc})"
                    )
                raise
            # No transaction left to abort (the abort completed meanwhile): nothing to resume.
        self._abort_pending = False
        self._abort_failing_since = 0.0

    def _guard(self, call: str) -> AbstractContextManager[None]:
        return self.watchdog.guard(call, HUNG_AFTER_S[call] * self.settings.watchdog_scale)

    def _rewind(self, records: list[Message]) -> None:
        assert self.consumer is not None
        for tp in first_offsets(records):
            try:
                self.consumer.seek(tp)
            except KafkaException as exc:
                # The partition was revoked meanwhile: its new owner starts from the committed offset.
                log.info("not rewinding %s[%d]: %s", tp.topic, tp.partition, exc)

    def _retry_later(self, records: list[Message], why: str, kind: str) -> None:
        ERRORS.labels(DAEMON, kind).inc()
        self._rewind(records)
        self._backoff = min(max(self._backoff * 2, 0.5), 10.0)
        log.warning("batch of %d records will be retried in %.1f s: %s", len(records), self._backoff, why)

    def _on_kafka_exception(self, records: list[Message], exc: KafkaException) -> None:
        err: KafkaError = exc.args[0]
        if err.fatal():
            log.error("fatal Kafka error (%s): restarting the producer is required", err)
            raise exc
        self._retry_later(records, str(err), "kafka")

    def _is_error(self, message: Message) -> bool:
        err = message.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            ERRORS.labels(DAEMON, "consume").inc()
            log.warning("consumer error: %s", err)
        return True


def _received_at_us(headers: Headers | dict[str, str | bytes | None] | None) -> int | None:
    """The bridge's f2.received_at as microseconds since the epoch; None when absent or unreadable."""
    text = header(headers, topics.H_RECEIVED_AT)
    if text is None:
        return None
    try:
        received = datetime.fromisoformat(text)
    except ValueError:
        return None
    if received.tzinfo is None:
        return None
    return (received - _EPOCH) // _ONE_US


def _mqtt_topic(headers: Headers | dict[str, str | bytes | None] | None) -> str | None:
    # The bridge writes the topic header first: that case skips the general lookup.
    if isinstance(headers, list) and headers:
        name, value = headers[0]
        if name == topics.H_MQTT_TOPIC and isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
    return header(headers, topics.H_MQTT_TOPIC)


def main() -> int:
    from streaming.runtime.runloop import configure_logging, run

    configure_logging(DAEMON)
    settings = ProcessorSettings()
    return run(Processor(ConnectionSettings(), settings, PresenceSettings()), settings.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
