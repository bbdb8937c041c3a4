"""Kafka as a three-node KRaft cluster (replication factor 3, min.insync.replicas 2, no unclean leader election)
and the hard faults under load: SIGKILL of the leader of a busy f2.raw partition, of the broker coordinating the
processor's transactions and of the active controller, each node coming back later; processors and sinks scaled
1 -> 3 -> 1 during a run.

Every run is reconciled exactly against the simulator's ledger (every reading of every acknowledged message
stored once), and duplicates are counted everywhere: rows of decoded_data against the ledger (its primary key
makes a duplicate row impossible, a duplicate would be an extra or missing one), each reading's records in
f2.decoded read with read_committed, and the source coordinates of the dead letters of a trickle of bad frames
sent alongside (each must be there exactly once).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from f2_platform.stack.daemons import pipeline_daemon, start_all, stop_all
from f2_platform.stack.manager import Stack
from simulator.reconcile import ledger_readings
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.kafka_cluster import (
    INTERNAL_TOPICS,
    QUIET,
    all_in_sync,
    dead_letter_coordinates,
    decoded_readings,
    end_offsets,
    led_without,
    partitions,
    quorum_leader,
    read_committed,
    transaction_coordinator,
    twice,
    wait_until,
)
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import F2, publish, simulate, wait_reconciled

pytestmark = [pytest.mark.integration]

# pipeline_daemon("processor", 0, instance="test") runs with F2_PROCESSOR_INSTANCE_ID=test-0.
TRANSACTIONAL_ID = "f2-processor-test-0"
# A wired sensor of the sample registry and a frame whose CRC does not match (tests/vectors/frames.json): every
# such message is dead-lettered with reason crc.
BAD_TOPIC = "tele/f2-aabbccddee03/sensor-mode/J4/sensor-3"
BAD_FRAME = "01 03 06 08 34 13 88 03 20 15 7E"
PLATFORM_TOPICS = tuple(spec.name for spec in topics.TOPICS)
WATCHED = (topics.RAW, topics.DECODED, topics.DEADLETTER, *INTERNAL_TOPICS)


@pytest.fixture(scope="module")
def cluster_pipeline(
    cluster_migrated: ConnectionSettings, cluster_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    p = Pipeline(env_without_proxy(cluster_env), tmp_path_factory.mktemp("cluster-daemons"))
    p.start()
    try:
        yield p
    finally:
        p.stop()


# --- the cluster as `f2 stack status` and the brokers show it -------------------------------------------------
def test_status_shows_three_brokers_and_every_topics_replication(
    cluster_stack: Stack, cluster_env: dict[str, str], cluster_pipeline: Pipeline
) -> None:
    # The pipeline ran: the processor's transactions and the groups' offsets made Kafka's internal topics.
    result = subprocess.run([F2, "stack", "status"], env=cluster_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    first = int(cluster_env["F2_STACK_KAFKA_PORT"])
    for n in (1, 2, 3):
        port = first + 2 * (n - 1)
        assert re.search(rf"^kafka-{n}\s+{port}\s+\d+\s+answering$", out, re.MULTILINE), out
        assert re.search(rf"^  broker {n}: 127\.0\.0\.1:{port}$", out, re.MULTILINE), out
    assert "kafka: 3 of 3 broker(s) registered" in out, out
    partitions_each = cluster_stack.settings.kafka_partitions
    for name in PLATFORM_TOPICS:
        assert re.search(rf"^  {re.escape(name)}\s+{partitions_each}\s+3\s+2\s+all\b", out, re.MULTILINE), out
    for name in INTERNAL_TOPICS:  # offsets and transaction state: 10 partitions (service_config), replicated too
        assert re.search(rf"^  {name}\s+10\s+3\s+2\s+all\b", out, re.MULTILINE), out


def test_topics_are_replicated_on_three_nodes_without_unclean_election(
    cluster_stack: Stack, cluster_migrated: ConnectionSettings, cluster_pipeline: Pipeline
) -> None:
    admin = AdminClient({**cluster_stack.kafka.client_config(admin=True), "socket.timeout.ms": 5000})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in (*PLATFORM_TOPICS, *INTERNAL_TOPICS)]
    for resource, future in admin.describe_configs(resources).items():
        config = future.result(timeout=30)
        assert config["min.insync.replicas"].value == "2", resource.name
        assert config["unclean.leader.election.enable"].value == "false", resource.name
        for leader, replicas, isr in partitions(cluster_migrated, resource.name).values():
            assert len(set(replicas)) == 3 and sorted(isr) == sorted(replicas) and leader in replicas, resource.name
    broker = ConfigResource(ConfigResource.Type.BROKER, "2")
    config = admin.describe_configs([broker])[broker].result(timeout=30)
    expected = {
        "min.insync.replicas": "2",
        "default.replication.factor": "3",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "unclean.leader.election.enable": "false",
    }
    assert {name: config[name].value for name in expected} == expected


# --- load, a fault, and the exactly-once checks ---------------------------------------------------------------
@dataclass
class FaultRun:
    """One run of the simulator's fleet and a trickle of bad frames, with a fault in the middle."""

    env: dict[str, str]
    conn: ConnectionSettings
    work_dir: Path
    duration_s: float = 40.0
    ledger: Path = field(init=False)
    start: dict[str, dict[int, int]] = field(default_factory=dict)
    bad_payloads: list[bytes] = field(default_factory=list)
    numbers: dict[str, object] = field(default_factory=dict)
    _bad_error: BaseException | None = None

    def __post_init__(self) -> None:
        self.ledger = self.work_dir / "ledger.jsonl"

    def run(self, fault: Callable[[FaultRun], None], fault_after_s: float = 6.0) -> None:
        self.start = {name: end_offsets(self.conn, name) for name in (topics.RAW, topics.DECODED, topics.DEADLETTER)}
        sim_env = {**self.env, "F2_SIMULATOR_TRANSPORT": "internal"}
        proc = simulate(
            sim_env,
            *("--controllers", "10", "--interval", "0.1", "--duration", str(self.duration_s)),
            *("--ledger", str(self.ledger), "--seed", str(int(time.time()))),
        )
        stop = threading.Event()
        bad = threading.Thread(target=self._bad_frames, args=(stop,), daemon=True)
        bad.start()
        try:
            time.sleep(fault_after_s)
            assert proc.poll() is None, "the simulator finished before the fault"
            fault(self)
            out, _ = proc.communicate(timeout=self.duration_s + 300)
        finally:
            stop.set()
            bad.join(60)
            if proc.poll() is None:
                proc.kill()
        text = out.decode(errors="replace")
        assert proc.returncode == 0, text[-3000:]
        acked = re.search(r"(\d+) messages acknowledged by the broker", text)
        assert acked and int(acked.group(1)) > 0, text[-3000:]
        self.numbers["messages acknowledged"] = int(acked.group(1))
        assert not bad.is_alive() and self._bad_error is None, f"publishing the bad frames failed: {self._bad_error}"

    def _bad_frames(self, stop: threading.Event) -> None:
        """Ten bad frames every 0.4 s while the fleet runs, each with a timestamp of its own."""
        minute = int(time.time() / 60) % 60
        i = 0
        try:
            while not stop.is_set():
                chunk = []
                for _ in range(10):
                    stamp = f"2026-03-01 10:{minute:02d}:00.{i:06d}"
                    chunk.append((BAD_TOPIC, json.dumps({"timestamp": stamp, "data": BAD_FRAME}).encode()))
                    i += 1
                publish(self.conn, chunk)
                self.bad_payloads += [p for _, p in chunk]
                stop.wait(0.4)
        except BaseException as exc:  # the test asserts on it
            self._bad_error = exc

    def check_exactly_once(self, timeout: float = 240) -> None:
        started = time.monotonic()
        report = wait_reconciled(self.ledger, self.conn.timeseries_dsn, timeout)
        self.numbers["seconds from the last message to reconciled"] = round(time.monotonic() - started, 1)
        assert report.exact, (
            f"decoded_data: expected {report.expected} readings, stored {report.stored}; missing "
            f"{report.missing[:5]}, unexpected {report.unexpected[:5]}, wrong {report.wrong_value[:5]}"
        )
        expected, _ = ledger_readings([self.ledger])
        self.numbers["readings"] = len(expected)
        devices = {key[1] for key in expected}

        raw = read_committed(self.conn, topics.RAW, self.start[topics.RAW])
        raw_twice = twice(Counter((r.headers.get(topics.H_MQTT_TOPIC, ""), r.value or b"") for r in raw))
        decoded = decoded_readings(read_committed(self.conn, topics.DECODED, self.start[topics.DECODED]), devices)
        assert not twice(decoded), (
            f"f2.decoded holds {len(twice(decoded))} readings more than once (e.g. {twice(decoded)[:3]}); "
            f"f2.raw holds {len(raw_twice)} messages more than once"
        )
        assert set(decoded) == set(expected), (
            f"f2.decoded: {len(set(expected) - set(decoded))} ledger readings missing, "
            f"{len(set(decoded) - set(expected))} not in the ledger"
        )

        dead = read_committed(self.conn, topics.DEADLETTER, self.start[topics.DEADLETTER])
        coordinates = dead_letter_coordinates(dead)
        assert not twice(coordinates), f"dead letters of the same source record: {twice(coordinates)[:5]}"
        assert all(r.headers.get(topics.H_MQTT_TOPIC) == BAD_TOPIC for r in dead), "an unexpected dead letter"
        assert all(r.headers.get(topics.H_REASON) == "crc" for r in dead)
        values = Counter(r.value or b"" for r in dead)
        assert sorted(values) == sorted(self.bad_payloads) and not twice(values), (
            f"{len(self.bad_payloads)} bad frames sent, {len(dead)} dead letters of {len(values)} of them"
        )
        self.numbers["bad frames, each dead-lettered once"] = len(self.bad_payloads)
        self.numbers["duplicates (f2.raw, f2.decoded, dead letters)"] = len(raw_twice)
        print(f"\n{json.dumps(self.numbers)}")


def kill_and_restart(run: FaultRun, stack: Stack, node_id: int, down_s: float = 10.0) -> None:
    """SIGKILL node `node_id`; time until its partitions have new leaders; start it again after `down_s`
    and time until every replica is back in sync."""
    node = stack.kafka.node(node_id)
    killed = time.monotonic()
    node.kill()
    run.numbers["seconds until every partition had a leader again"] = round(
        wait_until(lambda: led_without(run.conn, node_id, WATCHED), 60, f"new leaders for node {node_id}'s partitions"),
        1,
    )
    time.sleep(max(0.0, down_s - (time.monotonic() - killed)))
    node.start()
    run.numbers["seconds the node was down"] = round(time.monotonic() - killed, 1)
    run.numbers["seconds until every replica was in sync again"] = round(
        wait_until(lambda: all_in_sync(run.conn, WATCHED), 180, "the restarted node's replicas to catch up"), 1
    )


def _fault_run(cluster_env: dict[str, str], conn: ConnectionSettings, tmp_path: Path) -> FaultRun:
    return FaultRun(env_without_proxy(cluster_env), conn, tmp_path)


@pytest.mark.slow
def test_sigkill_of_a_busy_raw_partitions_leader_loses_and_doubles_nothing(
    cluster_stack: Stack, cluster_env: dict[str, str], cluster_migrated: ConnectionSettings,
    cluster_pipeline: Pipeline, tmp_path: Path,
) -> None:  # fmt: skip
    def fault(run: FaultRun) -> None:
        written = end_offsets(run.conn, topics.RAW)
        busiest = max(written, key=lambda p: written[p] - run.start[topics.RAW].get(p, 0))
        leader = partitions(run.conn, topics.RAW)[busiest][0]
        run.numbers["f2.raw records in the busiest partition before the kill"] = (
            written[busiest] - run.start[topics.RAW][busiest]
        )
        kill_and_restart(run, cluster_stack, leader)

    run = _fault_run(cluster_env, cluster_migrated, tmp_path)
    run.run(fault)
    run.check_exactly_once()
    assert all(cluster_pipeline.alive().values()), cluster_pipeline.alive()


@pytest.mark.slow
def test_sigkill_of_the_processors_transaction_coordinator_loses_and_doubles_nothing(
    cluster_stack: Stack, cluster_env: dict[str, str], cluster_migrated: ConnectionSettings,
    cluster_pipeline: Pipeline, tmp_path: Path,
) -> None:  # fmt: skip
    def fault(run: FaultRun) -> None:
        coordinator = transaction_coordinator(cluster_stack, tmp_path, TRANSACTIONAL_ID)
        run.numbers["coordinator"] = coordinator
        # kill_and_restart waits until the transaction state log's partitions, whose leaders are the
        # coordinators, are led by the other nodes: the processor's transactions moved to another coordinator.
        kill_and_restart(run, cluster_stack, coordinator)
        run.numbers["coordinator after the restart"] = transaction_coordinator(
            cluster_stack, tmp_path, TRANSACTIONAL_ID
        )

    run = _fault_run(cluster_env, cluster_migrated, tmp_path)
    run.run(fault)
    run.check_exactly_once()
    assert all(cluster_pipeline.alive().values()), cluster_pipeline.alive()


@pytest.mark.slow
def test_sigkill_of_the_active_controller_loses_and_doubles_nothing(
    cluster_stack: Stack, cluster_env: dict[str, str], cluster_migrated: ConnectionSettings,
    cluster_pipeline: Pipeline, tmp_path: Path,
) -> None:  # fmt: skip
    def fault(run: FaultRun) -> None:
        controller = quorum_leader(cluster_stack, tmp_path)
        node = cluster_stack.kafka.node(controller)
        killed = time.monotonic()
        node.kill()
        elected = quorum_leader(cluster_stack, tmp_path)
        run.numbers["seconds until the probe saw a new controller"] = round(time.monotonic() - killed, 1)
        assert elected != controller and elected in (1, 2, 3)
        time.sleep(max(0.0, 10.0 - (time.monotonic() - killed)))
        node.start()
        run.numbers["seconds the controller's node was down"] = round(time.monotonic() - killed, 1)
        run.numbers["seconds until every replica was in sync again"] = round(
            wait_until(lambda: all_in_sync(run.conn, WATCHED), 180, "the restarted node's replicas to catch up"), 1
        )

    run = _fault_run(cluster_env, cluster_migrated, tmp_path)
    run.run(fault)
    run.check_exactly_once()
    assert all(cluster_pipeline.alive().values()), cluster_pipeline.alive()


def _group_members(conn: ConnectionSettings, group: str) -> list[set[tuple[str, int]]]:
    admin = AdminClient({**conn.kafka_config(), "socket.timeout.ms": 5000, **QUIET})
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return [{(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} for m in description.members]


def _spread_over(conn: ConnectionSettings, group: str, members: int, partitions_total: int) -> bool:
    """The group has `members` members, each with partitions, and together they hold every partition."""
    assigned = _group_members(conn, group)
    return len(assigned) == members and all(assigned) and len(set().union(*assigned)) == partitions_total


@pytest.mark.slow
def test_processors_and_sinks_scaled_1_3_1_under_load_lose_and_double_nothing(
    cluster_stack: Stack, cluster_env: dict[str, str], cluster_migrated: ConnectionSettings,
    cluster_pipeline: Pipeline, tmp_path: Path,
) -> None:  # fmt: skip
    each = cluster_stack.settings.kafka_partitions
    # The processors read f2.raw; the sinks f2.decoded and f2.events.
    groups = {topics.GROUP_PROCESSOR: each, topics.GROUP_SINK: 2 * each}
    processor = cluster_pipeline.get("processor-0")

    def assigned() -> set[int]:
        return set(processor.healthz()[1].get("assigned_partitions", []))

    def fault(run: FaultRun) -> None:
        alone = assigned()
        extra = [
            pipeline_daemon(kind, i, run.env, tmp_path / f"{kind}-{i}.log", instance="test")
            for kind in ("processor", "sink")
            for i in (1, 2)
        ]
        joined = time.monotonic()
        start_all(extra, timeout=120)
        for group, total in groups.items():
            wait_until(lambda g=group, t=total: _spread_over(run.conn, g, 3, t), 120, f"{group}: three members")
        run.numbers["seconds until three members of each group had partitions"] = round(time.monotonic() - joined, 1)
        shared = assigned()
        time.sleep(6)  # all three work for a while
        left = time.monotonic()
        codes = stop_all(extra)  # SIGTERM: each finishes its batch, commits and leaves its groups
        assert all(code == 0 for code in codes.values()), codes
        for group, total in groups.items():
            wait_until(lambda g=group, t=total: _spread_over(run.conn, g, 1, t), 120, f"{group}: one member again")
        run.numbers["seconds until one member of each group had every partition"] = round(time.monotonic() - left, 1)
        # The first processor gave partitions away and took them all back (its callback runs at its next poll).
        assert alone == set(range(each)) and shared and shared < alone, (alone, shared)
        wait_until(lambda: assigned() == alone, 30, "processor-0 to report every partition again")

    run = _fault_run(cluster_env, cluster_migrated, tmp_path)
    run.duration_s = 45.0
    run.run(fault, fault_after_s=5.0)
    run.check_exactly_once()
    assert all(cluster_pipeline.alive().values()), cluster_pipeline.alive()
