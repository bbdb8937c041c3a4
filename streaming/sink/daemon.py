"""`f2 sink`: decoded readings -> TimescaleDB `decoded_data`, events -> `device_events`, exactly once per key.

Batches by size and time over both inputs (f2.decoded and f2.events); COPY into a session staging table and
one insert (an upsert when keys exist already), in one database transaction with the `latest_values` update
and the batch's events (with `component_states` and `controller_presence`); Kafka offsets are committed only
after that transaction committed. Every F2_SINK_PRESENCE_CHECK_S, while its input is drained, the sink turns
controllers silent for too long to offline. The database work runs on a writer thread while the main thread
consumes and parses the next batch (a pipeline of `pipeline_depth` batches; commits stay in order). A database
outage is retried with backoff on the same batch (nothing is skipped); a record (reading or event) the database
rejects for its content is isolated by bisection and dead-lettered, and its batch-mates are stored.
"""

from __future__ import annotations

import logging
import queue
import random
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streaming.decoding.events import PRESENCE
from streaming.kafka import topics
from streaming.kafka.lag import record_lag
from streaming.kafka.records import coordinates, dead_letter_headers, next_offsets
from streaming.runtime.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    CONNECTED,
    DEAD_LETTERED,
    ERRORS,
    EVENTS_OUT,
    LATENCY,
    MESSAGES_IN,
    MESSAGES_OUT,
    WRITE_FAILURES,
)
from streaming.runtime.runloop import STOP
from streaming.runtime.supervisor import Watchdog
from streaming.settings import ConnectionSettings, SinkSettings
from streaming.sink.event_rows import EventRow, parse_event
from streaming.sink.rows import NATIVE, RecordError, Row, copy_text, native_copy_binary, parse_record
from streaming.sink.sql import STAGING_DDL
from streaming.sink.writer import BatchRecord, EventsStored, mark_silent_offline, store_batch

log = logging.getLogger("f2.sink")
DAEMON = "sink"
DEAD_REASON = "malformed-payload"
WRITER_SWITCH_INTERVAL_S = 0.0005


@dataclass
class Batch:
    """One batch on its way through the pipeline: parsed on the main thread, stored on the writer's."""

    messages: list[Message]
    # The f2.decoded records (all of `messages` when the batch holds no event).
    readings: list[Message] = field(default_factory=list)
    # The f2.events records, parsed: events are a small share of the traffic, always parsed in Python.
    events: list[tuple[Message, EventRow]] = field(default_factory=list)
    dead: list[tuple[Message, str]] = field(default_factory=list)
    # The rows of the well-formed decoded records; None while the batch was only formatted natively (every
    # record is then well-formed, and the rows are parsed only to bisect a batch the database refuses).
    rows: list[tuple[Message, Row]] | None = None
    # The rows as COPY data, formatted before the writer takes the batch: binary while rows is None (formatted
    # natively), text once parsed.
    copy_data: bytes = b""
    # What the batch's events changed, once stored.
    events_stored: EventsStored = field(default_factory=EventsStored)
    # The offsets to commit once stored, and the batch's row of sink_batches (f2 trace).
    offsets: list[TopicPartition] = field(default_factory=list)
    record: BatchRecord | None = None
    started: float = field(default_factory=time.perf_counter)
    _dead_events: list[tuple[Message, str]] = field(default_factory=list)

    @staticmethod
    def of(messages: list[Message]) -> Batch:
        batch = Batch(messages, messages)
        # One comparison per record: a batch without events (the common case) keeps the native path as it was.
        if any(m.topic() == topics.EVENTS for m in messages):
            batch.readings = [m for m in messages if m.topic() != topics.EVENTS]
            for m in messages:
                if m.topic() == topics.EVENTS:
                    try:
                        batch.events.append((m, parse_event(m.value())))
                    except RecordError as exc:
                        batch._dead_events.append((m, f"event record: {exc}"))
            batch.dead = list(batch._dead_events)
        copy_data = native_copy_binary([m.value() for m in batch.readings]) if batch.readings else b""
        if copy_data is None:
            batch.parse()
        else:
            batch.copy_data = copy_data
        return batch

    def parse(self) -> list[tuple[Message, Row]]:
        """Parse every decoded record in Python: the rows, the dead letters and the COPY text."""
        checked: set[str] = set()
        rows: list[tuple[Message, Row]] = []
        self.dead = list(self._dead_events)
        for m in self.readings:
            try:
                rows.append((m, parse_record(m.value(), checked)))
            except RecordError as exc:
                self.dead.append((m, str(exc)))
        self.rows = rows
        self.copy_data = copy_text(row for _, row in rows)
        return rows

    def sample_timestamps(self, count: int) -> list[str]:
        """The timestamps of about `count` of the batch's readings, spread over it."""
        if self.rows is not None:
            step = max(1, len(self.rows) // count)
            return [row[0] for _, row in self.rows[::step]]
        step = max(1, len(self.readings) // count)
        return [str(orjson.loads(m.value() or b"{}").get("timestamp", "")) for m in self.readings[::step]]


class Sink:
    name = DAEMON

    def __init__(self, conn: ConnectionSettings, settings: SinkSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.watchdog = Watchdog()
        self.consumer: Consumer | None = None
        self.dead_producer: Producer | None = None
        self.db: psycopg.Connection | None = None  # the writer thread's alone once it runs
        self.pending: list[Message] = []
        self._batch_started = 0.0
        self._db_ok = False
        # (topic, partition): the sink reads f2.decoded and f2.events, whose partitions share their numbers.
        self._assigned: set[tuple[str, int]] = set()
        self._in = MESSAGES_IN.labels(DAEMON)
        self._out = MESSAGES_OUT.labels(DAEMON)
        self._todo: queue.Queue[Batch | None] = queue.Queue(maxsize=max(1, settings.pipeline_depth))
        self._done: queue.Queue[Batch] = queue.Queue()
        self._in_flight = 0
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        # The presence check runs only while the input is drained (the last read returned less than it asked
        # for): a sink behind its input has not yet stored the heartbeats that show controllers talked.
        self._drained = False
        self._presence_due = time.monotonic() + settings.presence_check_s
        # The next offset of each (topic, partition) after the last batch: where the next batch's range starts
        # (the consumer reads each partition in order), so no record is looked at twice to find it.
        self._positions: dict[tuple[str, int], int] = {}

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, stack: ExitStack) -> None:
        if not NATIVE:
            log.warning(
                "the native COPY formatter is not built: parsing records in pure Python, at a fraction of the"
                " throughput; reinstall the project so its build compiles it (make provision; in a checkout"
                " `uv sync --reinstall-package f2-platform`)"
            )
        kafka = self.conn.kafka_config()
        self.dead_producer = Producer({**kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
        stack.callback(lambda: self.dead_producer.flush(10) if self.dead_producer else None)
        self.consumer = Consumer(
            {
                **kafka,
                "group.id": topics.GROUP_SINK,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # A long database outage must not cost the sink its partitions.
                "max.poll.interval.ms": 900000,
                "partition.assignment.strategy": "cooperative-sticky",
                "fetch.max.bytes": 52428800,
                # Fewer, fuller fetches: less broker CPU per record, at most this much added latency.
                "fetch.min.bytes": 65536,
                "fetch.wait.max.ms": 25,
            }
        )
        self.consumer.subscribe([topics.DECODED, topics.EVENTS], on_assign=self._on_assign, on_revoke=self._on_revoke)
        stack.callback(self._close)
        self._probe_database()
        self._writer = threading.Thread(target=self._write_loop, name="sink-writer", daemon=True)
        self._writer.start()
        stack.callback(self._stop_writer)

    def step(self) -> None:
        assert self.consumer is not None
        self._collect()
        if not self.pending:
            self._batch_started = time.monotonic()
        room = self.settings.batch_size - len(self.pending)
        timeout = max(0.0, self.settings.batch_timeout_ms / 1000 - (time.monotonic() - self._batch_started))
        wanted = min(room, 10000)
        consumed = self.consumer.consume(wanted, min(timeout, 0.5))
        self._drained = len(consumed) < wanted
        for m in consumed:
            err = m.error()
            if err is None:
                self.pending.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                ERRORS.labels(DAEMON, "consume").inc()
                log.warning("consumer error: %s", err)
        due = (time.monotonic() - self._batch_started) * 1000 >= self.settings.batch_timeout_ms
        if self.pending and (len(self.pending) >= self.settings.batch_size or due):
            self._submit()
        self._collect()

    def drain(self) -> None:
        self.flush()

    def health(self) -> tuple[bool, dict[str, object]]:
        return self._db_ok, {
            "database": "ok" if self._db_ok else "unavailable",
            "pending": len(self.pending),
            "batches_in_flight": self._in_flight,
            "assigned_partitions": [f"{topic}:{partition}" for topic, partition in sorted(self._assigned)],
            "native_copy": NATIVE,
            "input_drained": self._drained,
        }

    def _close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()

    def _stop_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            try:
                self._todo.put(None, timeout=5)
            except queue.Full:
                log.warning("the database writer is still busy at shutdown")
            self._writer.join(30)
        if self.db is not None:
            self.db.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        for p in partitions:
            self._positions.pop((p.topic, p.partition), None)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {(p.topic, p.partition) for p in partitions}
        # Store and commit what we hold before another sink takes these partitions over.
        self.flush()

    # --- the main thread's side of the pipeline --------------------------------------------------------------
    def flush(self) -> None:
        """Store everything read so far durably and commit its offsets; returns when both happened."""
        if self.pending:
            self._submit()
        while self._in_flight:
            self._collect(wait=0.2)

    def _submit(self) -> None:
        """Parse the pending records and hand them to the writer (waits while the pipeline is full)."""
        batch = Batch.of(self.pending)
        self.pending = []
        batch.offsets = next_offsets(batch.messages)
        batch.record = self._batch_record(batch)
        self._in.inc(len(batch.messages))
        self._in_flight += 1
        while True:
            self._check_writer()
            try:
                self._todo.put(batch, timeout=0.2)
                return
            except queue.Full:
                self._collect()

    def _collect(self, wait: float = 0.0) -> None:
        """Commit the offsets of every batch the writer has stored, in order."""
        self._check_writer()
        try:
            batch = self._done.get(timeout=wait) if wait else self._done.get_nowait()
        except queue.Empty:
            return
        while True:
            self._in_flight -= 1
            self._commit(batch.offsets)
            self._out.inc(len(batch.messages) - len(batch.dead))
            for kind, count in batch.events_stored.inserted.items():
                EVENTS_OUT.labels(DAEMON, kind).inc(count)
            BATCH_SIZE.labels(DAEMON).observe(len(batch.messages))
            BATCH_SECONDS.labels(DAEMON).observe(time.perf_counter() - batch.started)
            self._observe_latency(batch)
            try:
                batch = self._done.get_nowait()
            except queue.Empty:
                return

    def _check_writer(self) -> None:
        if self._writer_error is not None:
            raise RuntimeError("the sink's database writer stopped") from self._writer_error

    def _batch_record(self, batch: Batch) -> BatchRecord:
        """The batch's offset range per partition: from where the previous batch ended (or, for a partition's
        first batch since its assignment, its lowest offset) to its last record."""
        positions = self._positions
        unknown = [(tp.topic, tp.partition) for tp in batch.offsets if (tp.topic, tp.partition) not in positions]
        if unknown:
            wanted = set(unknown)
            for m in batch.messages:
                topic, partition, offset = coordinates(m)
                if (topic, partition) in wanted:
                    positions[(topic, partition)] = offset
                    wanted.discard((topic, partition))
                    if not wanted:
                        break
        names, partitions, firsts, lasts = [], [], [], []
        for tp in batch.offsets:
            names.append(tp.topic)
            partitions.append(tp.partition)
            firsts.append(positions[(tp.topic, tp.partition)])
            lasts.append(tp.offset - 1)
            positions[(tp.topic, tp.partition)] = tp.offset
        events = len(batch.events)
        readings = len(batch.messages) - events
        return BatchRecord(random.getrandbits(63), names, partitions, firsts, lasts, readings, events)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        assert self.consumer is not None
        try:
            # librdkafka can block here for good after a broker restart: the watchdog turns that into a restart.
            with self.watchdog.guard("offset commit", self.settings.commit_hung_after_s):
                self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the rows are stored, so redelivery only re-upserts.
            ERRORS.labels(DAEMON, "commit").inc()
            log.warning("offset commit failed (%s); the new owner re-reads and re-upserts those records", exc)
        record_lag(self.consumer, DAEMON, offsets)

    def _observe_latency(self, batch: Batch) -> None:
        now = datetime.now(UTC)
        hist = LATENCY.labels(DAEMON)
        for stamp in batch.sample_timestamps(50):  # a sample keeps this off the hot path
            try:
                ts = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            hist.observe(max(0.0, (now - ts).total_seconds()))

    # --- the writer thread ----------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            while True:
                wait = min(5.0, max(0.01, self._presence_due - time.monotonic()))
                try:
                    batch = self._todo.get(timeout=wait)
                except queue.Empty:
                    batch = None
                    if time.monotonic() < self._presence_due:
                        self._probe_database()  # keeps /healthz truthful while idle
                else:
                    if batch is None:
                        return
                    self._write(batch)
                    self._done.put(batch)
                if time.monotonic() >= self._presence_due:
                    self._check_presence()
        except BaseException as exc:  # handed to the main thread, which stops the daemon with it
            log.exception("the database writer failed")
            self._writer_error = exc

    def _check_presence(self) -> None:
        """Turn controllers silent past their silence_after_s offline: only while the input is drained and no
        batch waits to be stored; a failure is retried at the next check."""
        if not (self._drained and self._todo.empty()):
            # Looked at again soon, without spinning while batches keep the writer busy.
            self._presence_due = time.monotonic() + min(self.settings.presence_check_s, 0.5)
            return
        self._presence_due = time.monotonic() + self.settings.presence_check_s
        try:
            gone = mark_silent_offline(self._connection())
        except psycopg.OperationalError as exc:
            self._db_failed(exc)
            log.warning("presence check failed (%s); retried at the next check", exc)
            return
        self._db_ok = True
        CONNECTED.labels(DAEMON, "database").set(1)
        if gone:
            EVENTS_OUT.labels(DAEMON, PRESENCE).inc(len(gone))
            log.info("%d controller(s) silent past their threshold are offline: %s", len(gone), ", ".join(gone[:20]))

    def _write(self, batch: Batch) -> None:
        """Store a batch durably (retrying while the database is away), dead letters included."""
        delay = self.settings.retry_initial_s
        while True:
            try:
                dead = self._store_batch(batch)  # may parse the batch, which sets batch.dead
                batch.dead.extend(dead)
                break
            except psycopg.OperationalError as exc:
                self._db_failed(exc)
                if STOP.signals > 1:
                    raise
                log.warning(
                    "database unavailable (%s); retrying the batch of %d in %.1f s", exc, len(batch.messages), delay
                )
                time.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
        if batch.dead:
            self._dead_letter(batch.dead)

    def _probe_database(self) -> None:
        try:
            self._connection().execute("SELECT 1")
            self.db.commit()  # type: ignore[union-attr]
            self._db_ok = True
            CONNECTED.labels(DAEMON, "database").set(1)
        except psycopg.OperationalError as exc:
            self._db_failed(exc)

    def _connection(self) -> psycopg.Connection:
        if self.db is None or self.db.closed:
            self.db = psycopg.connect(self.settings.timeseries_dsn or self.conn.timeseries_dsn, connect_timeout=5)
            self.db.execute(STAGING_DDL)
            self.db.commit()
        return self.db

    def _store_batch(self, batch: Batch) -> list[tuple[Message, str]]:
        batch.events_stored = EventsStored()
        if batch.rows is not None:
            return self._store([*batch.rows, *batch.events], batch.events_stored, batch.record, batch.copy_data)
        try:
            batch.events_stored = self._write_copy(
                batch.copy_data, [e for _, e in batch.events], binary=True, record=batch.record
            )
            return []
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            # Formatted natively, so every record parses: its rows are needed only now, to find those refused.
            return self._isolate([*batch.parse(), *batch.events], batch.events_stored, exc, batch.record)

    def _write_copy(
        self, copy_data: bytes, events: list[EventRow], binary: bool = False, record: BatchRecord | None = None
    ) -> EventsStored:
        _, stored = store_batch(self._connection(), copy_data, binary, events, record)
        self._db_ok = True
        CONNECTED.labels(DAEMON, "database").set(1)
        return stored

    def _store(
        self,
        items: list[tuple[Message, Row | EventRow]],
        stored: EventsStored,
        record: BatchRecord | None,
        copy_data: bytes | None = None,
    ) -> list[tuple[Message, str]]:
        """Write readings and events in one transaction; on a content error, bisect to find the records the
        database rejects. `stored` adds up what the events changed; each transaction that commits part of the
        batch writes the batch's record with its own counts."""
        if not items:
            return []
        events = [item for _, item in items if isinstance(item, EventRow)]
        if record is not None:
            record = record._replace(readings=len(items) - len(events), events=len(events))
        try:
            if copy_data is None:
                copy_data = copy_text(item for _, item in items if not isinstance(item, EventRow))
            _add(stored, self._write_copy(copy_data, events, record=record))
            return []
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            return self._isolate(items, stored, exc, record)

    def _isolate(
        self,
        items: list[tuple[Message, Row | EventRow]],
        stored: EventsStored,
        exc: psycopg.Error,
        record: BatchRecord | None,
    ) -> list[tuple[Message, str]]:
        """The records of a write the database refused that it rejects on their own, found by bisection."""
        if len(items) == 1:
            what = "event" if isinstance(items[0][1], EventRow) else "reading"
            return [(items[0][0], f"the database rejected the {what}: {str(exc).splitlines()[0]}")]
        mid = len(items) // 2
        return self._store(items[:mid], stored, record) + self._store(items[mid:], stored, record)

    def _db_failed(self, exc: Exception) -> None:
        self._db_ok = False
        CONNECTED.labels(DAEMON, "database").set(0)
        WRITE_FAILURES.labels(DAEMON).inc()
        if self.db is not None:
            try:
                self.db.close()
            finally:
                self.db = None

    def _dead_letter(self, dead: list[tuple[Message, str]]) -> None:
        producer = self.dead_producer
        assert producer is not None
        for m, detail in dead:
            headers = dead_letter_headers(DEAD_REASON, detail, *coordinates(m), None)
            producer.produce(topics.DEADLETTER, key=m.key(), value=m.value(), headers=headers)
            DEAD_LETTERED.labels(DAEMON, DEAD_REASON).inc()
        # The dead letters must be durable before the offsets that skip their records are committed.
        while producer.flush(10):
            log.warning("waiting for Kafka to accept %d dead-letter records", len(producer))


def _add(total: EventsStored, part: EventsStored) -> None:
    total.inserted.update(part.inserted)
    total.corrected += part.corrected
    total.states += part.states
    total.heartbeats += part.heartbeats


def main() -> int:
    from streaming.runtime.runloop import configure_logging, run

    configure_logging(DAEMON)
    # The writer thread needs the interpreter lock after every statement while the main thread parses the
    # next batch; with the default 5 ms switch interval the database sat idle waiting for it. 0.5 ms: the
    # sink stage stored 12 % more rows per second with the same database CPU.
    sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)
    settings = SinkSettings()
    return run(Sink(ConnectionSettings(), settings), settings.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
