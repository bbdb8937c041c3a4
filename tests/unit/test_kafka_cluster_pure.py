"""The Kafka cluster's pure parts: the replication policy, a node's rendered settings, the shape a state folder
resolves to, and what `f2 stack status` prints of the brokers and topics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from f2_platform.errors import StackError
from f2_platform.settings import StackSettings
from f2_platform.stack.kafka import KafkaShape, resolve_shape
from f2_platform.stack.kafka_status import KafkaStatus, format_kafka_status, topic_status
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.service_config import (
    KafkaNode,
    KafkaTlsFiles,
    KafkaVoter,
    kafka_properties,
    kafka_replication,
)


def test_one_node_keeps_one_copy_and_a_cluster_three_with_two_in_sync() -> None:
    assert (kafka_replication(1).replication_factor, kafka_replication(1).min_insync_replicas) == (1, 1)
    assert (kafka_replication(3).replication_factor, kafka_replication(3).min_insync_replicas) == (3, 2)
    with pytest.raises(ValueError, match="run 1 node, or 3 or more"):
        kafka_replication(2)


def _node(node_id: int, tls: KafkaTlsFiles | None = None) -> KafkaNode:
    quorum = tuple(KafkaVoter(n, "127.0.0.1", 9093 + 2 * (n - 1)) for n in (1, 2, 3))
    return KafkaNode(
        client_bind="127.0.0.1",
        client_port=9092 + 2 * (node_id - 1),
        advertised_host="127.0.0.1",
        controller_host="127.0.0.1",
        controller_port=9093 + 2 * (node_id - 1),
        sasl_mechanism="SCRAM-SHA-256",
        log_dirs=f"/data/kafka-{node_id}",
        num_partitions=6,
        node_id=node_id,
        quorum=quorum,
        tls=tls,
    )


def test_a_cluster_node_names_the_whole_quorum_and_replicates_everything() -> None:
    props = {d.name: d.text for d in kafka_properties(_node(2))}
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert props["min.insync.replicas"] == "2"
    assert props["default.replication.factor"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    assert not any(name.startswith("ssl.") for name in props)


def test_a_tls_node_speaks_sasl_ssl_to_clients_and_to_its_peers() -> None:
    props = {d.name: d.text for d in kafka_properties(_node(1, KafkaTlsFiles("/k/keystore.pem", "/pki/ca.crt")))}
    assert props["listeners"].startswith("SASL_SSL://127.0.0.1:9092,")
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:9092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["ssl.keystore.type"] == "PEM" and props["ssl.keystore.location"] == "/k/keystore.pem"
    assert props["ssl.truststore.location"] == "/pki/ca.crt"
    assert props["ssl.enabled.protocols"] == "TLSv1.3,TLSv1.2"


@pytest.fixture(autouse=True)
def _no_kafka_shape_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # `F2_STACK_KAFKA_BROKERS=3 make test` runs the suite on a cluster: not these tests' settings.
    for name in ("F2_STACK_KAFKA_BROKERS", "F2_STACK_KAFKA_TLS"):
        monkeypatch.delenv(name, raising=False)


def _layout(tmp_path: Path, **settings: object) -> StackLayout:
    return StackLayout(StackSettings(state_dir=tmp_path, **settings))  # type: ignore[arg-type]


def test_the_shape_comes_from_the_settings_then_the_state_folder(tmp_path: Path) -> None:
    assert resolve_shape(_layout(tmp_path)) == KafkaShape(1, False)
    assert resolve_shape(_layout(tmp_path, kafka_brokers=3, kafka_tls=True)) == KafkaShape(3, True)
    (tmp_path / "kafka.json").write_text(json.dumps({"brokers": 3, "tls": True}))
    assert resolve_shape(_layout(tmp_path)) == KafkaShape(3, True)
    assert resolve_shape(_layout(tmp_path, kafka_tls=False)) == KafkaShape(3, False)
    with pytest.raises(StackError, match="F2_STACK_KAFKA_BROKERS=2"):
        resolve_shape(_layout(tmp_path, kafka_brokers=2))


def test_a_folder_of_the_single_node_era_is_one_node(tmp_path: Path) -> None:
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("cluster.id=x\n")
    assert resolve_shape(_layout(tmp_path)) == KafkaShape(1, False)


def test_status_counts_replicas_in_sync_and_names_what_is_wrong() -> None:
    healthy = topic_status("f2.raw", {0: (1, [1, 2, 3], [1, 2, 3]), 1: (2, [2, 3, 1], [2, 3, 1])}, 2)
    assert (healthy.partitions, healthy.replication_factor, healthy.in_sync, healthy.replicas) == (2, 3, 6, 6)
    assert healthy.leaders == {1: 1, 2: 1}
    broken = topic_status("f2.decoded", {0: (3, [1, 2, 3], [3]), 1: (-1, [1, 2, 3], [])}, 2)
    assert broken.under_replicated == (0, 1) and broken.below_min_isr == (0, 1) and broken.offline == (1,)
    status = KafkaStatus({1: "h:1", 2: "h:3", 3: "h:5"}, (healthy, broken))
    lines, whole = format_kafka_status(status, 3)
    assert not whole
    assert lines[0] == "kafka: 3 of 3 broker(s) registered"
    raw = next(line for line in lines if "f2.raw" in line)
    assert raw.split()[:6] == ["f2.raw", "2", "3", "2", "all", "(leaders"]
    decoded = next(line for line in lines if "f2.decoded" in line)
    assert "1 of 6; under-replicated: 0,1; below min.isr (acks=all refused): 0,1; no leader: 1" in decoded
    assert format_kafka_status(KafkaStatus({1: "h:1", 2: "h:3", 3: "h:5"}, (healthy,)), 3)[1]
    assert not format_kafka_status(KafkaStatus({1: "h:1"}, (healthy,)), 3)[1], "a missing broker is not whole"
