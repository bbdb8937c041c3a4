"""The streaming path's observations: consumer lag per group, dead letters by reason (counted through the
sensor's cursor), and the size and freshness of decoded_data, each checked against an independent reading."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from f2_platform.defs.streaming_observability.observation_sensor import streaming_observation_sensor
from streaming.kafka import topics
from tests.dagster.conftest import cursor_of, evaluate, insert_readings, sensor_context

pytestmark = pytest.mark.integration


def observations(result: dg.SensorResult) -> dict[str, dict[str, Any]]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.metadata.items()}
        for e in result.asset_events
        if isinstance(e, dg.AssetObservation)
    }


def produce_dead_letters(conf: dict[str, str], reasons: list[str | None]) -> None:
    producer = Producer(conf)
    for i, reason in enumerate(reasons):
        headers: list[tuple[str, str | bytes | None]] = [(topics.H_SOURCE_TOPIC, topics.RAW.encode())]
        if reason is not None:
            headers.append((topics.H_REASON, reason.encode()))
        producer.produce(topics.DEADLETTER, key=b"aabbccddee99", value=f"dead {i}".encode(), headers=headers)
    assert producer.flush(30) == 0


def independent_lag(conf: dict[str, str], group: str, topic: str) -> int:
    consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = [
            TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        lag = 0
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        consumer.close()


def test_dead_letters_are_counted_by_reason_through_the_cursor(migrated, code_resources, instance) -> None:
    conf = migrated.kafka_config()
    produce_dead_letters(conf, ["crc", "crc", "bad-hex", None])
    first = evaluate(streaming_observation_sensor, sensor_context(instance, code_resources, None))
    seen = observations(first)["kafka/f2_deadletter"]
    cursor = cursor_of(first)["deadletter"]
    assert seen["dead_letters_total"] == sum(cursor["counts"].values()) >= 4
    assert seen["reason/crc"] >= 2 and seen["reason/bad-hex"] >= 1 and seen["reason/unknown"] >= 1

    produce_dead_letters(conf, ["crc", "unwired-position", "crc"])
    second = evaluate(streaming_observation_sensor, sensor_context(instance, code_resources, first.cursor))
    now = observations(second)["kafka/f2_deadletter"]
    assert now["dead_letters_new"] == 3
    assert now["dead_letters_total"] == seen["dead_letters_total"] + 3
    delta = Counter({k: now[k] - seen[k] for k in now if k.startswith("reason/")})
    assert +delta == Counter({"reason/crc": 2, "reason/unwired-position": 1})
    # The cursor points at the end of every partition: a third tick reads nothing new.
    consumer = Consumer({**conf, "group.id": f"test-{uuid.uuid4().hex}"})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topics.DEADLETTER, p), timeout=10)[1]
        for p in consumer.list_topics(topics.DEADLETTER, timeout=10).topics[topics.DEADLETTER].partitions
    }
    consumer.close()
    assert {int(p): o for p, o in cursor_of(second)["deadletter"]["offsets"].items()} == {
        p: o for p, o in ends.items() if o > 0
    }
    third = evaluate(streaming_observation_sensor, sensor_context(instance, code_resources, second.cursor))
    assert observations(third)["kafka/f2_deadletter"]["dead_letters_new"] == 0
    assert third.cursor == second.cursor


def test_lag_and_table_observations_match_independent_readings(migrated, ts, code_resources, instance) -> None:
    insert_readings(ts, [(datetime.now(UTC) - timedelta(minutes=3), 880601, 1, 1.0)])
    ts.execute("ANALYZE decoded_data")  # the row count is the planner's estimate, exact once analysed
    result = evaluate(streaming_observation_sensor, sensor_context(instance, code_resources, None))
    seen = observations(result)
    conf = migrated.kafka_config()
    assert seen["kafka/f2_raw"]["consumer_group"] == topics.GROUP_PROCESSOR
    assert seen["kafka/f2_raw"]["consumer_lag"] == independent_lag(conf, topics.GROUP_PROCESSOR, topics.RAW)
    assert seen["kafka/f2_decoded"]["consumer_lag"] == independent_lag(conf, topics.GROUP_SINK, topics.DECODED)

    table = seen["decoded_data"]
    newest, rows = ts.execute('SELECT extract(epoch FROM max("timestamp")), count(*) FROM decoded_data').fetchone()
    assert table["newest_reading"] == pytest.approx(float(newest))
    assert table["rows_estimate"] == rows
    chunks = ts.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'decoded_data'")
    assert table["chunks"] == chunks.fetchone()[0]
    assert table["bytes"] == ts.execute("SELECT hypertable_size('decoded_data')").fetchone()[0] > 0
