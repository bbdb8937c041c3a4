"""Consumer lag as a metric: records between the committed position and the end of each partition."""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streaming.runtime.metrics import CONSUMER_LAG


def record_lag(consumer: Consumer, daemon: str, committed: list[TopicPartition]) -> None:
    """`committed` holds the next offsets just committed; the high watermarks come from the fetcher's cache."""
    for tp in committed:
        try:
            _, high = consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
        except KafkaException:
            continue
        if high is not None and high >= 0:
            CONSUMER_LAG.labels(daemon, tp.topic, str(tp.partition)).set(max(0, high - tp.offset))
