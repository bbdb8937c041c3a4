"""Reading a topic's records by time window (located with offsets_for_times) or at given coordinates, with
short-lived consumers that never join a group nor commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime

from confluent_kafka import Consumer, Message, TopicPartition


def _consumer(config: Mapping[str, str], purpose: str) -> Consumer:
    return Consumer(
        {
            **config,
            "group.id": f"f2-{purpose}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "log_level": "4",
        }
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def read_window(
    config: Mapping[str, str],
    topic: str,
    start: datetime,
    end: datetime | None = None,
    partitions: list[int] | None = None,
    batch_size: int = 5000,
    timeout_s: float = 30.0,
) -> Iterator[list[Message]]:
    """Batches of the topic's records whose Kafka timestamp lies in [start, end) (end None: up to the end each
    partition had when the read began), partition by partition in offset order."""
    consumer = _consumer(config, "window")
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            raise RuntimeError(f"topic {topic} is not available: {meta.error if meta else 'missing'}")
        wanted = sorted(meta.partitions) if partitions is None else partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1] for p in wanted}
        located = consumer.offsets_for_times([TopicPartition(topic, p, _ms(start)) for p in wanted], timeout=timeout_s)
        begin = {tp.partition: tp.offset for tp in located if 0 <= tp.offset < ends[tp.partition]}
        if not begin:
            return  # no record at or after `start` (and librdkafka refuses an empty offsets_for_times)
        if end is not None:
            # The first offset at or after `end` bounds each partition (timestamps of one producer only grow).
            stops = consumer.offsets_for_times([TopicPartition(topic, p, _ms(end)) for p in begin], timeout=timeout_s)
            for tp in stops:
                if 0 <= tp.offset < ends[tp.partition]:
                    ends[tp.partition] = tp.offset
        remaining = {p: ends[p] for p, o in begin.items() if o < ends[p]}
        if not remaining:
            return
        consumer.assign([TopicPartition(topic, p, begin[p]) for p in remaining])
        idle = 0.0
        end_ms = None if end is None else _ms(end)
        start_ms = _ms(start)
        while remaining:
            messages = consumer.consume(batch_size, timeout=1.0)
            if not messages:
                # Transaction markers take offsets too: a partition whose last records are markers is done once
                # the consumer's position passed its end, with nothing more to return.
                for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                    if tp.offset >= remaining.get(tp.partition, 0):
                        remaining.pop(tp.partition, None)
                idle += 1.0
                if remaining and idle >= timeout_s:
                    raise TimeoutError(
                        f"{topic}: nothing to read for {timeout_s:.0f} s while partitions {sorted(remaining)} "
                        "had records left; is Kafka reachable?"
                    )
                continue
            idle = 0.0
            batch = []
            for m in messages:
                if m.error() is not None:
                    continue
                p, o = m.partition(), m.offset()
                if p not in remaining or o is None or o >= remaining[p]:
                    continue
                if o + 1 >= remaining[p]:
                    del remaining[p]
                stamp = m.timestamp()[1]
                if stamp < start_ms or (end_ms is not None and stamp >= end_ms):
                    continue
                batch.append(m)
            if batch:
                yield batch
    finally:
        consumer.close()


def fetch(
    config: Mapping[str, str], topic: str, coordinates: list[tuple[int, int]], timeout_s: float = 10.0
) -> dict[tuple[int, int], Message]:
    """The records at (partition, offset) that are still retained (a missing key: gone, or never written)."""
    found: dict[tuple[int, int], Message] = {}
    if not coordinates:
        return found
    wanted = set(coordinates)
    consumer = _consumer(config, "fetch")
    try:
        for partition, offset in sorted(wanted):
            if (partition, offset) in found:
                continue
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if not low <= offset < high:
                continue
            consumer.assign([TopicPartition(topic, partition, offset)])
            waited = 0.0
            while waited < timeout_s:
                messages = consumer.consume(500, timeout=1.0)
                if not messages:
                    waited += 1.0
                    continue
                done = False
                for m in messages:
                    if m.error() is not None or m.partition() != partition:
                        continue
                    o = m.offset()
                    assert o is not None
                    if (partition, o) in wanted:
                        found[(partition, o)] = m
                    if o >= offset:
                        done = True
                if done:
                    break
    finally:
        consumer.close()
    return found
