"""Small typed helpers over confluent-kafka messages shared by the consuming daemons."""

from __future__ import annotations

from confluent_kafka import Message, TopicPartition

Headers = list[tuple[str, str | bytes | None]]


def coordinates(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed record; always set on records that carry no error."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def next_offsets(records: list[Message]) -> list[TopicPartition]:
    """The offsets to commit after `records`: one past the highest of each partition.

    A consumer returns each partition's records in offset order, so the last one seen is the highest.
    """
    last = {(m.topic(), m.partition()): m.offset() for m in records}
    # Consumed records always carry their coordinates; the check runs once per partition, not per record.
    return [
        TopicPartition(t, p, o + 1) for (t, p), o in last.items() if t is not None and p is not None and o is not None
    ]


def first_offsets(records: list[Message]) -> list[TopicPartition]:
    """The lowest offset of each partition in `records`: where to rewind to retry them."""
    first: dict[tuple[str, int], int] = {}
    for m in records:
        topic, partition, offset = coordinates(m)
        first[(topic, partition)] = min(first.get((topic, partition), offset), offset)
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]
