"""Small typed helpers over confluent-kafka messages shared by the consuming daemons: coordinates, offsets,
headers and the dead-letter headers (docs/contracts.md)."""

from __future__ import annotations

from confluent_kafka import Message, TopicPartition

from streaming.kafka import topics

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


def dead_letter_headers(
    reason: str,
    detail: str,
    source_topic: str,
    partition: int,
    offset: int,
    mqtt_topic: str | None,
) -> Headers:
    headers: Headers = [
        (topics.H_REASON, reason.encode()),
        (topics.H_DETAIL, " ".join(detail.split())[:1000].encode()),
        (topics.H_SOURCE_TOPIC, source_topic.encode()),
        (topics.H_SOURCE_PARTITION, str(partition).encode()),
        (topics.H_SOURCE_OFFSET, str(offset).encode()),
    ]
    if mqtt_topic is not None:
        headers.append((topics.H_MQTT_TOPIC, mqtt_topic.encode()))
    return headers


def header(headers: Headers | dict[str, str | bytes | None] | None, name: str) -> str | None:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for key, value in items:
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return None
