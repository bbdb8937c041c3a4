"""`f2 sink`: decoded readings -> TimescaleDB `decoded_data`, exactly once per key.

Batches by size and time; COPY into a session staging table and one upsert, in one database transaction
with the `latest_values` update; Kafka offsets are committed only after that transaction committed. A
database outage is retried with backoff on the same batch (nothing is skipped); a record the database
rejects for its content is isolated by bisection and dead-lettered, and its batch-mates are stored.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from datetime import UTC, datetime

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from f2_platform.settings import ConnectionSettings
from streaming import topics
from streaming.kafka_records import coordinates, next_offsets
from streaming.lag import record_lag
from streaming.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    CONNECTED,
    DEAD_LETTERED,
    ERRORS,
    LATENCY,
    MESSAGES_IN,
    MESSAGES_OUT,
    WRITE_FAILURES,
)
from streaming.records import dead_letter_headers
from streaming.runloop import STOP
from streaming.settings import SinkSettings
from streaming.sink_batch import (
    COPY_SQL,
    LATEST_SQL,
    STAGING_DDL,
    UPSERT_SQL,
    RecordError,
    Row,
    copy_text,
    parse_record,
)

log = logging.getLogger("f2.sink")
DAEMON = "sink"
DEAD_REASON = "malformed-payload"


class Sink:
    name = DAEMON

    def __init__(self, conn: ConnectionSettings, settings: SinkSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.consumer: Consumer | None = None
        self.dead_producer: Producer | None = None
        self.db: psycopg.Connection | None = None
        self.pending: list[Message] = []
        self._batch_started = 0.0
        self._db_ok = False
        self._last_probe = 0.0
        self._assigned: set[int] = set()
        self._in = MESSAGES_IN.labels(DAEMON)
        self._out = MESSAGES_OUT.labels(DAEMON)

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, stack: ExitStack) -> None:
        kafka = self.conn.kafka_config()
        self.dead_producer = Producer({**kafka, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
        stack.callback(lambda: self.dead_producer.flush(10) if self.dead_producer else None)
        self.consumer = Consumer({
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
        })
        self.consumer.subscribe([topics.DECODED], on_assign=self._on_assign, on_revoke=self._on_revoke)
        stack.callback(self._close)
        self._probe_database()

    def _probe_database(self) -> None:
        """Keeps /healthz truthful while idle: is the database reachable right now?"""
        self._last_probe = time.monotonic()
        try:
            self._connection().execute("SELECT 1")
            self.db.commit()  # type: ignore[union-attr]
            self._db_ok = True
            CONNECTED.labels(DAEMON, "database").set(1)
        except psycopg.OperationalError as exc:
            self._db_failed(exc)

    def step(self) -> None:
        assert self.consumer is not None
        if not self.pending:
            self._batch_started = time.monotonic()
        room = self.settings.batch_size - len(self.pending)
        timeout = max(0.0, self.settings.batch_timeout_ms / 1000 - (time.monotonic() - self._batch_started))
        for m in self.consumer.consume(min(room, 10000), min(timeout, 0.5)):
            err = m.error()
            if err is None:
                self.pending.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                ERRORS.labels(DAEMON, "consume").inc()
                log.warning("consumer error: %s", err)
        due = (time.monotonic() - self._batch_started) * 1000 >= self.settings.batch_timeout_ms
        if self.pending and (len(self.pending) >= self.settings.batch_size or due):
            self.flush()
        elif not self.pending and time.monotonic() - self._last_probe > 5.0:
            self._probe_database()

    def drain(self) -> None:
        if self.pending:
            self.flush()

    def health(self) -> tuple[bool, dict[str, object]]:
        return self._db_ok, {"database": "ok" if self._db_ok else "unavailable", "pending": len(self.pending),
                             "assigned_partitions": sorted(self._assigned)}

    def _close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
        if self.db is not None:
            self.db.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {p.partition for p in partitions}

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned -= {p.partition for p in partitions}
        # Store what we hold for these partitions before another sink takes them over.
        if self.pending:
            self.flush()

    # --- writing -------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Store the pending batch durably, then commit its offsets; retries until both happened."""
        batch, self.pending = self.pending, []
        started = time.perf_counter()
        rows: list[tuple[Message, Row]] = []
        dead: list[tuple[Message, str]] = []
        for m in batch:
            try:
                rows.append((m, parse_record(m.value())))
            except RecordError as exc:
                dead.append((m, str(exc)))
        self._in.inc(len(batch))
        delay = self.settings.retry_initial_s
        while True:
            try:
                dead.extend(self._store(rows))
                break
            except psycopg.OperationalError as exc:
                self._db_failed(exc)
                if STOP.signals > 1:
                    raise
                log.warning("database unavailable (%s); retrying the batch of %d in %.1f s", exc, len(batch), delay)
                time.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
        if dead:
            self._dead_letter(dead)
        self._commit(batch)
        stored = len(batch) - len(dead)
        self._out.inc(stored)
        BATCH_SIZE.labels(DAEMON).observe(len(batch))
        BATCH_SECONDS.labels(DAEMON).observe(time.perf_counter() - started)
        self._observe_latency(rows)

    def _connection(self) -> psycopg.Connection:
        if self.db is None or self.db.closed:
            self.db = psycopg.connect(self.settings.timeseries_dsn or self.conn.timeseries_dsn, connect_timeout=5)
            self.db.execute(STAGING_DDL)
            self.db.commit()
        return self.db

    def _store(self, rows: list[tuple[Message, Row]]) -> list[tuple[Message, str]]:
        """Write rows in one transaction; on a content error, bisect to find the rows the database rejects."""
        if not rows:
            return []
        db = self._connection()
        try:
            with db.transaction():
                with db.cursor() as cur, cur.copy(COPY_SQL) as copy:
                    copy.write(copy_text(row for _, row in rows))
                db.execute(UPSERT_SQL)
                db.execute(LATEST_SQL)
            self._db_ok = True
            CONNECTED.labels(DAEMON, "database").set(1)
            return []
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            if len(rows) == 1:
                return [(rows[0][0], f"the database rejected the reading: {str(exc).splitlines()[0]}")]
            mid = len(rows) // 2
            return self._store(rows[:mid]) + self._store(rows[mid:])

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

    def _commit(self, batch: list[Message]) -> None:
        assert self.consumer is not None
        offsets = next_offsets(batch)
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the rows are stored, so redelivery only re-upserts.
            ERRORS.labels(DAEMON, "commit").inc()
            log.warning("offset commit failed (%s); the new owner re-reads and re-upserts those records", exc)
        record_lag(self.consumer, DAEMON, offsets)

    def _observe_latency(self, rows: list[tuple[Message, Row]]) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        hist = LATENCY.labels(DAEMON)
        step = max(1, len(rows) // 50)  # a sample keeps this off the hot path
        for _, row in rows[::step]:
            try:
                ts = datetime.fromisoformat(row.timestamp.replace("Z", "+00:00"))
            except ValueError:
                continue
            hist.observe(max(0.0, (now - ts).total_seconds()))


def main() -> int:
    from f2_platform.connections import resolve_connections
    from streaming.runloop import configure_logging, run

    configure_logging(DAEMON)
    settings = SinkSettings()
    return run(Sink(resolve_connections(), settings), settings.metrics_port)


if __name__ == "__main__":
    raise SystemExit(main())
