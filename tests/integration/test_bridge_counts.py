"""The bridge's durable counts (f2.bridge.counts): what it received per controller and receive time, before it
acknowledges; and a bridge refusing to run where the topic is missing."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from f2_platform.stack.daemons import pipeline_daemon
from streaming.bridge import EXIT_CONFIG
from streaming.bridge_counts import decode_counts
from streaming.kafka import topics
from streaming.kafka.records import header
from streaming.settings import ConnectionSettings
from tests.pipeline import env_without_proxy
from tests.realtime import publish, wait_for

pytestmark = pytest.mark.integration


def read_all(conn: ConnectionSettings, topic: str, since: dict[int, int]) -> list:
    """Every record of `topic` from the offsets in `since` to the end."""
    consumer = Consumer({**conn.kafka_config(), "group.id": f"test-counts-{secrets.token_hex(4)}"})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in since}
        wanted = {p: o for p, o in since.items() if o < ends[p]}
        consumer.assign([TopicPartition(topic, p, o) for p, o in wanted.items()])
        records, deadline = [], time.monotonic() + 30
        while wanted and time.monotonic() < deadline:
            for m in consumer.consume(500, timeout=0.5):
                if m.error() is None:
                    records.append(m)
                    if m.offset() + 1 >= ends[m.partition()]:
                        wanted.pop(m.partition(), None)
        assert not wanted, f"partitions {sorted(wanted)} of {topic} not read to their end"
        return records
    finally:
        consumer.close()


def ends_of(conn: ConnectionSettings, topic: str) -> dict[int, int]:
    consumer = Consumer({**conn.kafka_config(), "group.id": "test-counts-ends"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def test_the_bridge_counts_every_message_per_controller_in_its_receive_hour(
    migrated: ConnectionSettings, pipeline
) -> None:
    macs = [f"c0c0{secrets.token_hex(4)}" for _ in range(2)]
    sent = {macs[0]: 7, macs[1]: 3}
    counts_start, raw_start = ends_of(migrated, topics.BRIDGE_COUNTS), ends_of(migrated, topics.RAW)
    messages = [
        (f"tele/f2-{mac}/sensor-mode/J1/sensor-1", json.dumps({"timestamp": "2026-01-01T00:00:00Z", "data": "00"}))
        for mac, n in sent.items()
        for _ in range(n)
    ]
    publish(migrated, [(t, p.encode()) for t, p in messages])

    def raw_of_ours() -> list:
        return [m for m in read_all(migrated, topics.RAW, raw_start) if (m.key() or b"").decode() in sent]

    def counts_of_ours() -> Counter[tuple[str, str]]:
        hours: Counter[tuple[str, str]] = Counter()
        for record in read_all(migrated, topics.BRIDGE_COUNTS, counts_start):
            batch = decode_counts(record.value())
            assert record.key() == batch.bridge.encode() == b"f2-bridge-test-0"
            hours.update({(mac, batch.hour): n for mac, n in batch.counts.items() if mac in sent})
        return hours

    # The broker holds a message until the bridge acknowledged it, which the bridge does only once the message's
    # raw record and its batch's counts record are in Kafka: both arrive, in whichever order.
    wait_for(lambda: len(raw_of_ours()) == sum(sent.values()), 30, what="our messages in f2.raw")
    wait_for(lambda: sum(counts_of_ours().values()) >= sum(sent.values()), 30, what="our counts")
    hours = counts_of_ours()
    counted: Counter[str] = Counter()
    for (mac, _), n in hours.items():
        counted[mac] += n
    assert counted == Counter(sent)
    raw_hours = Counter(
        ((m.key() or b"").decode(), (header(m.headers(), topics.H_RECEIVED_AT) or "")[:13]) for m in raw_of_ours()
    )
    assert hours == raw_hours  # the same receive hour on both sides, message for message


def test_a_bridge_refuses_to_run_without_the_counts_topic(
    migrated: ConnectionSettings, stack_env: dict[str, str], tmp_path: Path
) -> None:
    admin = AdminClient(migrated.kafka_config())
    partitions = len(admin.list_topics(topics.BRIDGE_COUNTS, timeout=10).topics[topics.BRIDGE_COUNTS].partitions)
    admin.delete_topics([topics.BRIDGE_COUNTS], operation_timeout=30)[topics.BRIDGE_COUNTS].result()
    try:
        wait_for(lambda: topics.BRIDGE_COUNTS not in admin.list_topics(timeout=10).topics, 30, what="the deletion")
        bridge = pipeline_daemon(
            "bridge",
            9,
            env_without_proxy(stack_env),
            tmp_path / "bridge.log",
            instance=f"nocounts{secrets.token_hex(2)}",
        )
        bridge.start()
        assert bridge.proc is not None
        try:
            assert bridge.proc.wait(60) == EXIT_CONFIG
        finally:
            bridge.stop()
        log = (tmp_path / "bridge.log").read_text()
        assert f"not {topics.BRIDGE_COUNTS}" in log and "f2 stack up, or f2-init" in log, log[-2000:]
    finally:
        created = topics.ensure_topics(migrated.kafka_config(), partitions)
        assert created == [topics.BRIDGE_COUNTS]
