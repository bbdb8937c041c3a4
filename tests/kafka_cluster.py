"""Helpers of the fault tests on the three-node Kafka cluster: who leads what (partitions, the KRaft quorum, a
transactional id's coordinator), waiting for leaders and in-sync replicas, and reading a topic back to count
what it holds twice."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from f2_platform.stack.manager import Stack
from streaming.kafka import topics
from streaming.settings import ConnectionSettings

PROBE = Path(__file__).parent / "kafka_probe" / "ClusterProbe.java"
Offsets = dict[int, int]
K = TypeVar("K")


# --- who leads what -------------------------------------------------------------------------------------------
def _java_client_properties(stack: Stack) -> str:
    """The stack's admin login as Java client properties (the probe runs Kafka's own Admin client)."""
    cfg = stack.kafka.client_config(admin=True)
    lines = [
        f"bootstrap.servers={cfg['bootstrap.servers']}",
        f"security.protocol={cfg['security.protocol']}",
        f"sasl.mechanism={cfg['sasl.mechanism']}",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{cfg["sasl.username"]}" password="{cfg["sasl.password"]}";',
        "request.timeout.ms=20000",
        "default.api.timeout.ms=60000",
    ]
    if "ssl.ca.location" in cfg:
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={cfg['ssl.ca.location']}"]
    return "\n".join(lines) + "\n"


def probe(stack: Stack, work_dir: Path, *request: str) -> dict[str, object]:
    """Ask the cluster through Kafka's Java Admin client (tests/kafka_probe/ClusterProbe.java)."""
    properties = work_dir / f"probe-{uuid.uuid4().hex[:8]}.properties"
    properties.write_text(_java_client_properties(stack))
    properties.chmod(0o600)
    libs = stack.settings.kafka_libs
    result = subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{libs}/*", str(PROBE), str(properties), *request],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    properties.unlink(missing_ok=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0 and lines, f"the cluster probe failed ({request}): {result.stderr[-2000:]}"
    answer: dict[str, object] = json.loads(lines[-1])
    return answer


def quorum_leader(stack: Stack, work_dir: Path) -> int:
    """The node id of the active KRaft controller (DescribeMetadataQuorum)."""
    return int(probe(stack, work_dir, "quorum")["leader"])  # type: ignore[call-overload]


def transaction_coordinator(stack: Stack, work_dir: Path, transactional_id: str) -> int:
    """The node id of the broker coordinating a transactional id (FindCoordinator, DescribeTransactions)."""
    return int(probe(stack, work_dir, "transaction", transactional_id)["coordinator"])  # type: ignore[call-overload]


# The tests poll while a node is down: librdkafka's "connection refused" for every poll is noise there.
QUIET = {"log_level": 2}


def _admin(conn: ConnectionSettings) -> AdminClient:
    return AdminClient({**conn.kafka_config(), "socket.timeout.ms": 5000, **QUIET})


def partitions(conn: ConnectionSettings, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, in-sync replicas); leader -1 while it has none."""
    meta = _admin(conn).list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in meta.partitions.values()}


def end_offsets(conn: ConnectionSettings, topic: str) -> Offsets:
    c = Consumer({**conn.kafka_config(), "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False, **QUIET})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in sorted(parts)}
    finally:
        c.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """Seconds it took until `check` held; AssertionError naming `what` after `timeout`."""
    started = time.monotonic()
    while not _quietly(check):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def _quietly(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except KafkaException:
        return False


INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")


def led_without(conn: ConnectionSettings, node_id: int, names: Iterable[str]) -> bool:
    """Every partition of `names` has a leader, and none is `node_id`."""
    for name in names:
        for leader, _, _ in partitions(conn, name).values():
            if leader < 0 or leader == node_id:
                return False
    return True


def all_in_sync(conn: ConnectionSettings, names: Iterable[str]) -> bool:
    return all(
        leader >= 0 and sorted(isr) == sorted(replicas)
        for name in names
        for leader, replicas, isr in partitions(conn, name).values()
    )


# --- reading topics back --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


def read_committed(conn: ConnectionSettings, topic: str, start: Offsets, timeout: float = 120) -> list[Record]:
    """Every committed record (read_committed: aborted ones and transaction markers left out) from `start` to
    the end of each partition as of this call; call it once nothing writes there any more."""
    end = end_offsets(conn, topic)
    todo = {p for p in end if end[p] > start.get(p, 0)}
    out: list[Record] = []
    if not todo:
        return out
    c = Consumer(
        {
            **conn.kafka_config(),
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            **QUIET,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, start.get(p, 0)) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo:
            assert time.monotonic() < deadline, f"{topic}: partitions {sorted(todo)} not read to their end"
            for m in c.consume(10_000, 1.0):
                err, partition = m.error(), m.partition()
                if partition is None:
                    continue
                if err is None:
                    headers = {k: (v or b"").decode(errors="replace") for k, v in (m.headers() or [])}
                    out.append(Record(partition, m.offset() or 0, m.key(), m.value(), headers))
                elif err.code() == KafkaError._PARTITION_EOF:
                    if c.position([TopicPartition(topic, partition)])[0].offset >= end[partition]:
                        todo.discard(partition)
                else:
                    raise KafkaException(err)
    finally:
        c.close()
    return out


def _us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


ReadingKey = tuple[int, int, int]  # (timestamp in us, device_id, datapoint_id), the ledger's key


def decoded_readings(records: list[Record], devices: set[int]) -> Counter[ReadingKey]:
    """How often each reading of `devices` is in f2.decoded records."""
    seen: Counter[ReadingKey] = Counter()
    for r in records:
        value = json.loads(r.value or b"{}")
        if int(value["device_id"]) in devices:
            seen[(_us(value["timestamp"]), int(value["device_id"]), int(value["datapoint_id"]))] += 1
    return seen


def twice(counts: Mapping[K, int]) -> list[K]:
    """The keys counted more than once."""
    return [key for key, n in counts.items() if n > 1]


def dead_letter_coordinates(records: list[Record]) -> Counter[tuple[str, str, str]]:
    """How often each source coordinate (topic, partition, offset) is in dead-letter records."""
    return Counter(
        (
            r.headers.get(topics.H_SOURCE_TOPIC, ""),
            r.headers.get(topics.H_SOURCE_PARTITION, ""),
            r.headers.get(topics.H_SOURCE_OFFSET, ""),
        )
        for r in records
    )
