"""Dead letters of a time window, counted by hour and reason class, read from the dead-letter topic.

A record's time is its Kafka timestamp (when the processor dead-lettered it). Timestamps in a partition are
not guaranteed to grow with offsets, so reading starts at the first offset whose timestamp reaches the
window's start (every record of the window lies at or after it) and goes to the end captured when the read
began, keeping the records whose timestamp falls inside the window.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import TopicPartition

from f2_platform.defs.resources import KafkaAdminResource
from streaming.kafka import topics
from streaming.kafka.records import Headers, coordinates, header

UNKNOWN_REASON = "unknown"
_MAC = re.compile(r"^[0-9a-f]{12}$")
_TOPIC_MAC = re.compile(r"^[a-z]+/f2-([0-9a-f]{12})/")
READER_GROUP = "f2-dagster-quality"


@dataclass
class DeadLetterCounts:
    """Counts per (hour start, reason); `complete` is False when the read stopped at its time budget."""

    by_hour_reason: Counter[tuple[datetime, str]] = field(default_factory=Counter)
    complete: bool = True
    records_read: int = 0

    def by_reason(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_, reason), n in self.by_hour_reason.items():
            totals[reason] += n
        return dict(sorted(totals.items()))

    @property
    def total(self) -> int:
        return sum(self.by_hour_reason.values())


def controller_of(key: str | bytes | None, headers: Headers | dict[str, str | bytes | None] | None) -> str | None:
    """The controller MAC of a dead letter: its key (the raw record's key), else its MQTT topic."""
    if key:
        text = (key.decode("ascii", errors="replace") if isinstance(key, bytes) else key).lower()
        if _MAC.match(text):
            return text
    mqtt_topic = header(headers, topics.H_MQTT_TOPIC)
    if mqtt_topic:
        match = _TOPIC_MAC.match(mqtt_topic)
        if match:
            return match.group(1)
    return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def count_dead_letters(
    kafka: KafkaAdminResource,
    start: datetime,
    end: datetime,
    controllers: set[str] | None = None,
    budget_s: float = 120.0,
    topic: str = topics.DEADLETTER,
) -> DeadLetterCounts:
    """Dead letters with a timestamp in [start, end), of `controllers` (MACs) only when given."""
    counts = DeadLetterCounts()
    ends = kafka.end_offsets(topic)
    start_ms, end_ms = _ms(start), _ms(end)
    with kafka.consumer(READER_GROUP) as consumer:
        located = consumer.offsets_for_times(
            [TopicPartition(topic, p, start_ms) for p in sorted(ends)], timeout=kafka.timeout_s
        )
        # -1: no record at or after the window's start in that partition.
        pending = {
            tp.partition: ends[tp.partition] for tp in located if tp.offset >= 0 and tp.offset < ends[tp.partition]
        }
        if not pending:
            return counts
        consumer.assign([TopicPartition(topic, tp.partition, tp.offset) for tp in located if tp.partition in pending])
        deadline = time.monotonic() + budget_s
        while pending:
            if time.monotonic() > deadline:
                counts.complete = False
                break
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is not None:
                    continue
                _, partition, offset = coordinates(message)
                if partition not in pending or offset >= pending[partition]:
                    continue
                counts.records_read += 1
                _, stamp = message.timestamp()
                if not start_ms <= stamp < end_ms:
                    continue
                if controllers is not None:
                    mac = controller_of(message.key(), message.headers())
                    if mac is None or mac not in controllers:
                        continue
                reason = header(message.headers(), topics.H_REASON) or UNKNOWN_REASON
                hour = datetime.fromtimestamp(stamp // 3_600_000 * 3600, tz=UTC)
                counts.by_hour_reason[(hour, reason)] += 1
            # Positions, not the last record, say when a partition is done (transaction markers).
            for tp in consumer.position([TopicPartition(topic, p) for p in list(pending)]):
                if tp.offset >= pending[tp.partition]:
                    del pending[tp.partition]
    return counts
