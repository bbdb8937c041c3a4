"""Reads a topic's records of a time window, located by timestamp (offsets_for_times): the raw topic for
reprocessing, and every hop's topic for the reconciliation (f2_platform/defs/reconciliation)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from confluent_kafka import Message, TopicPartition

from f2_platform.defs.resources import KafkaAdminResource
from streaming.kafka import topics

READER_GROUP = "f2-dagster-reprocess"


def read_raw_since(
    kafka: KafkaAdminResource, since: datetime, batch_size: int = 5000, timeout_s: float = 30.0
) -> Iterator[list[Message]]:
    """Batches of raw records received at or after `since`, up to the end each partition had at the start.

    Kafka timestamps are when the bridge received a record, never before the device stamped it (up to
    clock skew), so nothing of the window lies before `since`. Records arriving late (buffers flushed days
    later) sit anywhere after it: everything from `since` to the end is read and the caller filters by
    the device timestamp. The end is fixed up front, so new traffic never prolongs a run.
    """
    return read_topic_window(
        kafka, topics.RAW, since, None, committed_only=False, batch_size=batch_size, timeout_s=timeout_s
    )


def read_topic_window(
    kafka: KafkaAdminResource,
    topic: str,
    since: datetime,
    until: datetime | None,
    committed_only: bool,
    group: str = READER_GROUP,
    batch_size: int = 5000,
    timeout_s: float = 30.0,
) -> Iterator[list[Message]]:
    """Batches of `topic`'s records with Kafka timestamps from `since` up to `until` (None: up to the end
    each partition had at the start). `committed_only`: read_committed, the end being the last stable offset
    (records of aborted transactions are skipped); otherwise every record."""
    ends = kafka.end_offsets(topic, committed_only=committed_only)
    level = "read_committed" if committed_only else "read_uncommitted"
    with kafka.consumer(group, **{"isolation.level": level}) as consumer:
        if until is not None:
            until_ms = int(until.timestamp() * 1000)
            bounded = consumer.offsets_for_times([TopicPartition(topic, p, until_ms) for p in ends], timeout=timeout_s)
            for tp in bounded:
                if tp.offset >= 0:  # -1: no record at or after `until`, the partition's end stays the bound
                    ends[tp.partition] = min(ends[tp.partition], tp.offset)
        since_ms = int(since.timestamp() * 1000)
        located = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in ends], timeout=timeout_s)
        # offset -1: no record at or after `since` in that partition.
        start = {tp.partition: tp.offset for tp in located if 0 <= tp.offset < ends[tp.partition]}
        if not start:
            return
        consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        remaining = {p: ends[p] for p in start}
        idle_polls = 0
        while remaining:
            batch = consumer.consume(batch_size, timeout=1.0)
            if not batch:
                idle_polls += 1
                if idle_polls * 1.0 >= timeout_s:
                    raise TimeoutError(
                        f"no records of {topic} for {timeout_s:.0f} s while partitions {sorted(remaining)} "
                        "still had some to read; is Kafka reachable?"
                    )
                # read_committed: the last records before the bound may be transaction markers or aborted
                # records, never delivered; the consumer's position says it is past them.
                for tp in consumer.position([TopicPartition(topic, p) for p in list(remaining)]):
                    if tp.offset >= remaining.get(tp.partition, 1 << 62):
                        del remaining[tp.partition]
                continue
            idle_polls = 0
            records = []
            for message in batch:
                if message.error() is not None:
                    continue
                partition, offset = message.partition(), message.offset()
                if partition not in remaining or offset is None or offset >= remaining[partition]:
                    continue
                records.append(message)
                if offset + 1 >= remaining[partition]:
                    del remaining[partition]
            if records:
                yield records
            else:
                for tp in consumer.position([TopicPartition(topic, p) for p in list(remaining)]):
                    if tp.offset >= remaining.get(tp.partition, 1 << 62):
                        del remaining[tp.partition]
