"""Kafka helpers of the bench: topic ends, consumer-group offsets (read and moved), counting, pre-filling."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streaming.kafka import topics
from streaming.settings import ConnectionSettings

Offsets = dict[int, int]
_COORDINATOR_STARTING = (
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
)
Headers = list[tuple[str, str | bytes | None]]


def _admin(conn: ConnectionSettings) -> AdminClient:
    config: dict[str, str | int | float | bool] = dict(conn.kafka_config())
    return AdminClient(config)


def _consumer(conn: ConnectionSettings, **extra: object) -> Consumer:
    return Consumer(
        {
            **conn.kafka_config(),
            "group.id": f"f2-bench-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            **extra,
        }
    )


def end_offsets(conn: ConnectionSettings, topic: str) -> Offsets:
    c = _consumer(conn)
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(meta.partitions)}
    finally:
        c.close()


def committed_offsets(
    conn: ConnectionSettings, group: str, topic: str, partitions: Iterable[int], timeout: float = 60
) -> Offsets:
    admin = _admin(conn)
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])]
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
            return {tp.partition: max(tp.offset, 0) for tp in result.topic_partitions}
        except KafkaException as exc:
            # A freshly started broker answers "coordinator load in progress" until its offsets topic loaded.
            err: KafkaError = exc.args[0]
            if not (err.retriable() or err.code() in _COORDINATOR_STARTING) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def group_members(conn: ConnectionSettings, group: str) -> int:
    admin = _admin(conn)
    try:
        desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
    except KafkaException:
        return 0
    return len(desc.members)


def set_group_offsets(conn: ConnectionSettings, group: str, topic: str, offsets: Offsets, timeout: float = 90) -> None:
    """Move an idle consumer group to `offsets` (waits while a departed member's session lingers)."""
    admin = _admin(conn)
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in offsets.items()])]
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.alter_consumer_group_offsets(request)[group].result(timeout=30)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"cannot move consumer group {group} (is a daemon still in it?): {exc}") from exc
            time.sleep(1.0)


def skip_to_end(conn: ConnectionSettings, group: str, topic: str) -> Offsets:
    """Move an idle group to the current end of its topic (nothing left unconsumed for what comes next)."""
    end = end_offsets(conn, topic)
    set_group_offsets(conn, group, topic, end)
    return end


def lag(conn: ConnectionSettings, group: str, topic: str) -> int:
    ends = end_offsets(conn, topic)
    done = committed_offsets(conn, group, topic, ends)
    return sum(max(0, ends[p] - done.get(p, 0)) for p in ends)


def count_records(conn: ConnectionSettings, topic: str, start: Offsets, timeout: float = 600) -> int:
    """Records (read_committed, so aborted ones and transaction markers are not counted) from `start` to the
    current end of every partition; call it once nothing writes to the topic any more."""
    end = end_offsets(conn, topic)
    todo = {p for p in end if end[p] > start.get(p, 0)}
    if not todo:
        return 0
    c = _consumer(
        conn,
        **{"isolation.level": "read_committed", "enable.partition.eof": True, "fetch.max.bytes": 52428800},
    )
    count = 0
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"counting {topic}: partitions {sorted(todo)} not read to the end")
            for m in c.consume(100_000, 1.0):
                err = m.error()
                if err is None:
                    count += 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    partition = m.partition()
                    if partition is None:
                        continue
                    position = c.position([TopicPartition(topic, partition)])[0].offset
                    if position >= end[partition]:
                        todo.discard(partition)
                else:
                    raise KafkaException(err)
    finally:
        c.close()
    return count


def sample_records(
    conn: ConnectionSettings, topic: str, start: Offsets, end: Offsets, max_records: int = 20_000, timeout: float = 120
) -> list[Message]:
    """Every k-th record (read_committed) between two sets of offsets, at most about `max_records`."""
    todo = {p for p in end if end[p] > start.get(p, 0)}
    total = sum(end[p] - start.get(p, 0) for p in todo)
    if not todo:
        return []
    step = max(1, total // max_records)
    c = _consumer(conn, **{"isolation.level": "read_committed", "enable.partition.eof": True})
    out: list[Message] = []
    seen = 0
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(50_000, 1.0):
                partition, offset, err = m.partition(), m.offset(), m.error()
                if partition is None or partition not in todo:
                    continue
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(partition)
                    continue
                if offset is not None and offset >= end[partition]:
                    todo.discard(partition)
                    continue
                seen += 1
                if seen % step == 0:
                    out.append(m)
                if offset is not None and offset >= end[partition] - 1:
                    todo.discard(partition)
    finally:
        c.close()
    return out


def producer(conn: ConnectionSettings) -> Producer:
    return Producer(
        {
            **conn.kafka_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1048576,
        }
    )


def produce_all(
    p: Producer,
    topic: str,
    records: Iterable[tuple[bytes, bytes, Headers | None]],
    on_delivery: Callable[..., None] | None = None,
) -> int:
    n = 0
    for key, value, headers in records:
        while True:
            try:
                if on_delivery is None:
                    p.produce(topic, value=value, key=key, headers=headers)
                else:
                    p.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 10000 == 0:
            p.poll(0)
    return n


def received_at() -> bytes:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z").encode()


def raw_headers(mqtt_topic: str) -> Headers:
    """The headers the bridge puts on every raw record (docs/contracts.md)."""
    return [(topics.H_MQTT_TOPIC, mqtt_topic.encode()), (topics.H_RECEIVED_AT, received_at())]
