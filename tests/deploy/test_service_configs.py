"""Mosquitto, Redis and Kafka are configured once (f2_platform/stack/service_config.py) for the local stack and
for Compose: the committed Compose files are exactly what the definitions render, the two deployments agree
on every limit and policy the README promises, and the brokers enforce the MQTT message limit."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
import yaml
from confluent_kafka.admin import AdminClient, ConfigResource
from paho.mqtt.subscribeoptions import SubscribeOptions

from f2_platform.stack.manager import Stack
from f2_platform.stack.service_config import compose_configs
from tests.deploy.support import COMPOSE_FILE, REPO
from tests.deploy.test_compose import bootstrap_secrets
from tests.deploy.test_compose_services_live import (  # noqa: F401 - module fixtures: a broker on Compose's files
    Broker,
    accepted,
    bridge_client,
    broker,
    connect,
    device_client,
    secrets_dir,
    workdir,
)

COMPOSE_DIR = COMPOSE_FILE.parent

# What the README promises, stated here rather than read from the definitions under test.
MQTT_MESSAGE_LIMIT = 262144  # "MQTT messages above 256 kB are refused by the broker"
MOSQUITTO_EXPECTED = {
    "per_listener_settings": "false",
    "allow_anonymous": "false",
    "persistence": "true",
    "autosave_interval": "1",
    "autosave_on_changes": "false",  # saved every second: saving each pass stalls the broker (docs/guarantees.md)
    "max_queued_messages": "0",
    "max_queued_bytes": str(1024**3),
    "max_inflight_messages": "1000",
    "message_size_limit": "262144",
    "max_packet_size": str(262144 + 65536),
}
DEVICE_LISTENER_EXPECTED = {
    "require_certificate": "true",
    "use_identity_as_username": "true",
    "tls_version": "tlsv1.2",
    "max_connections": "10000",
}
DEVICE_ACL = ["pattern write tele/f2-%u/#", "pattern write stat/f2-%u/#", "pattern read cmnd/f2-%u/#"]
REDIS_EXPECTED = {
    "protected-mode": "yes",
    "save": '""',
    "appendonly": "no",
    "maxmemory": "256mb",
    "maxmemory-policy": "allkeys-lru",
}
KAFKA_EXPECTED = {
    "process.roles": "broker,controller",
    "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
    "inter.broker.listener.name": "SASL_PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "auto.create.topics.enable": "false",
    "message.max.bytes": str(4 * 1024 * 1024),
    "unclean.leader.election.enable": "false",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "10",
    "group.initial.rebalance.delay.ms": "0",
    "log.retention.hours": "168",
    "log.segment.bytes": str(256 * 1024 * 1024),
}
# A cluster of three (F2_STACK_KAFKA_BROKERS=3): three copies of everything, two of them in sync for acks=all.
KAFKA_CLUSTER_REPLICATION = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}
# Settings that are each deployment's own: where things are, and how the broker authenticates its peers.
MOSQUITTO_OWN = {"password_file", "acl_file", "persistence_location"}
REDIS_OWN = {"bind", "port", "dir", "daemonize", "aclfile", "user"}
KAFKA_OWN = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
    "num.partitions",
    "sasl.enabled.mechanisms",
    "sasl.mechanism.inter.broker.protocol",
    "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config",
}


# --- parsers of the three formats, written here independently of the renderers -----------------------------
def directives(text: str) -> list[tuple[str, str]]:
    lines = (line.strip() for line in text.splitlines())
    return [(line.split(" ", 1)[0], line.partition(" ")[2]) for line in lines if line and not line.startswith("#")]


def mosquitto_sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The global options and each listener's options (a `listener` line starts a listener's block)."""
    general: dict[str, str] = {}
    listeners: list[dict[str, str]] = []
    for name, value in directives(text):
        if name == "listener":
            listeners.append({"listener": value})
        elif name != "log_type":
            (listeners[-1] if listeners else general)[name] = value
    return general, listeners


def device_listener(listeners: list[dict[str, str]]) -> dict[str, str]:
    (device,) = [listener for listener in listeners if "certfile" in listener]
    return device


def properties(text: str) -> dict[str, str]:
    lines = (line.strip() for line in text.splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def kafka_env_to_properties(env: dict[str, str]) -> dict[str, str]:
    """apache/kafka's mapping: KAFKA_ dropped, lower case, `___` is `-`, `__` is `_`, `_` is `.`."""
    out = {}
    for name, value in env.items():
        assert name.startswith("KAFKA_"), name
        words = name.removeprefix("KAFKA_").lower().split("___")
        out["-".join("_".join(part.replace("_", ".") for part in word.split("__")) for word in words)] = value
    return out


def redis_users(lines: list[str]) -> dict[str, list[str]]:
    """ACL users by name, with their rules minus the password (`#<sha256>` or `>plain`)."""
    users = {}
    for line in lines:
        if line.startswith("user "):
            _, name, *rules = line.split()
            users[name] = [rule for rule in rules if not rule.startswith(("#", ">"))]
    return users


def assert_shared_equal(local: dict[str, str], compose: dict[str, str], own: set[str], what: str) -> None:
    """Every setting but a deployment's own is present in both, with the same value."""
    shared_local = {k: v for k, v in local.items() if k not in own}
    shared_compose = {k: v for k, v in compose.items() if k not in own}
    assert shared_local == shared_compose, f"{what}: the local stack and Compose differ"


# --- the committed Compose files are the rendered ones ------------------------------------------------------
def test_compose_files_are_exactly_what_the_shared_definitions_render() -> None:
    rendered = compose_configs()
    assert set(rendered) == {"mosquitto/mosquitto.conf", "mosquitto/acl", "redis/redis.conf", "kafka/broker.env"}
    for relative, text in rendered.items():
        committed = (COMPOSE_DIR / relative).read_text()
        assert committed == text, f"deploy/compose/{relative} drifted: run scripts/render_service_configs.py"
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_service_configs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_compose_runs_the_rendered_files_and_overrides_none_of_their_settings() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]

    def mounted(service: str) -> set[str]:
        return {str(volume).split(":")[0] for volume in services[service].get("volumes", [])}

    assert {"./mosquitto/mosquitto.conf", "./mosquitto/acl"} <= mounted("mosquitto")
    assert "./redis/redis.conf" in mounted("redis")
    kafka = services["kafka"]
    assert kafka["env_file"] == ["./kafka/broker.env"]
    # A variable in `environment:` would silently win over the shared one in the env_file.
    shared = set(properties((COMPOSE_DIR / "kafka" / "broker.env").read_text()))
    assert not shared & set(kafka.get("environment", {})), "compose.yaml overrides a shared Kafka setting"


# --- the local stack and Compose agree ----------------------------------------------------------------------
@pytest.mark.integration
def test_local_stack_and_compose_agree_on_every_limit_and_policy(stack: Stack, tmp_path: Path) -> None:
    # Mosquitto: the files the running local stack was started with, and Compose's.
    local_general, local_listeners = mosquitto_sections((stack.mosquitto.dir / "mosquitto.conf").read_text())
    compose_general, compose_listeners = mosquitto_sections((COMPOSE_DIR / "mosquitto" / "mosquitto.conf").read_text())
    for general in (local_general, compose_general):
        assert {k: general.get(k) for k in MOSQUITTO_EXPECTED} == MOSQUITTO_EXPECTED
    assert_shared_equal(local_general, compose_general, MOSQUITTO_OWN, "mosquitto.conf")
    for listeners in (local_listeners, compose_listeners):
        assert len(listeners) == 2
        device = device_listener(listeners)
        assert {k: device.get(k) for k in DEVICE_LISTENER_EXPECTED} == DEVICE_LISTENER_EXPECTED
        assert device.get("crlfile") and device.get("cafile")
        (internal,) = [listener for listener in listeners if listener is not device]
        assert "require_certificate" not in internal and "certfile" not in internal
    local_device, compose_device = device_listener(local_listeners), device_listener(compose_listeners)
    assert_shared_equal(
        local_device, compose_device, {"listener", "cafile", "certfile", "keyfile", "crlfile"}, "device listener"
    )
    # One ACL for both listeners: the devices' patterns, and no internal account a device CN could claim.
    for acl in (stack.mosquitto.dir / "acl", COMPOSE_DIR / "mosquitto" / "acl"):
        rules = [f"{name} {value}" for name, value in directives(acl.read_text())]
        assert [rule for rule in rules if rule.startswith("pattern ")] == DEVICE_ACL
        accounts = [rule.split()[1] for rule in rules if rule.startswith("user ")]
        assert accounts and not [a for a in accounts if re.fullmatch(r"[0-9a-f]{12}", a)]

    # Redis: the local conf holds its users inline; Compose's are the secret bootstrap.py writes.
    local_redis = directives((stack.redis.dir / "redis.conf").read_text())
    compose_redis = directives((COMPOSE_DIR / "redis" / "redis.conf").read_text())
    for conf in (local_redis, compose_redis):
        assert {k: dict(conf).get(k) for k in REDIS_EXPECTED} == REDIS_EXPECTED
    assert_shared_equal(dict(local_redis), dict(compose_redis), REDIS_OWN, "redis.conf")
    bootstrap_secrets(tmp_path / "secrets")
    compose_acl = (tmp_path / "secrets" / "redis_users.acl").read_text().splitlines()
    local_users = redis_users([f"{k} {v}" for k, v in local_redis if k == "user"])
    compose_users = redis_users(compose_acl)
    for users in (local_users, compose_users):
        assert users["default"] == ["off"]
    processor = local_users["f2-processor"]
    assert processor == compose_users["f2-processor"], "the processor's Redis rights differ"
    assert "~f2:topology:*" in processor and "-@all" in processor and "+@all" not in processor

    # Kafka: server.properties of the running local broker, and Compose's env_file.
    local_kafka = properties((stack.kafka.nodes[0].dir / "server.properties").read_text())
    env = properties((COMPOSE_DIR / "kafka" / "broker.env").read_text())
    compose_kafka = kafka_env_to_properties(env)
    for props in (local_kafka, compose_kafka):
        assert {k: props.get(k) for k in KAFKA_EXPECTED} == KAFKA_EXPECTED
        assert "CONTROLLER://127.0.0.1:" in props["listeners"], "the controller listener stays on loopback"
    assert_shared_equal(local_kafka, compose_kafka, KAFKA_OWN, "Kafka broker")
    # A raw record carries one MQTT message: the broker must take the largest one the MQTT broker accepts.
    assert int(local_kafka["message.max.bytes"]) > MQTT_MESSAGE_LIMIT


@pytest.mark.integration
def test_the_local_cluster_agrees_with_compose_on_everything_but_its_quorum_and_replication(
    cluster_stack: Stack,
) -> None:
    compose = kafka_env_to_properties(properties((COMPOSE_DIR / "kafka" / "broker.env").read_text()))
    s = cluster_stack.settings
    voters = ",".join(f"{n}@127.0.0.1:{s.kafka_controller_port + 2 * (n - 1)}" for n in (1, 2, 3))
    nodes = [properties((node.dir / "server.properties").read_text()) for node in cluster_stack.kafka.nodes]
    assert len(nodes) == 3
    for n, props in enumerate(nodes, start=1):
        assert props["node.id"] == str(n)
        assert props["controller.quorum.voters"] == voters
        assert props["process.roles"] == "broker,controller"
        assert props["listeners"] == (
            f"SASL_PLAINTEXT://127.0.0.1:{s.kafka_port + 2 * (n - 1)},"
            f"CONTROLLER://127.0.0.1:{s.kafka_controller_port + 2 * (n - 1)}"
        )
        assert {k: props.get(k) for k in KAFKA_CLUSTER_REPLICATION} == KAFKA_CLUSTER_REPLICATION
        assert props["unclean.leader.election.enable"] == "false"
        # Everything else is the one policy Compose's single node runs too.
        assert_shared_equal(props, compose, KAFKA_OWN | {"node.id"} | set(KAFKA_CLUSTER_REPLICATION), f"node {n}")
    assert len({props["log.dirs"] for props in nodes}) == 3, "each node keeps its data in a folder of its own"


@pytest.mark.integration
def test_running_local_services_use_the_rendered_settings(stack: Stack) -> None:
    admin = AdminClient({**stack.kafka.client_config(admin=True), "socket.timeout.ms": 5000})
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    for name in ("message.max.bytes", "auto.create.topics.enable", "min.insync.replicas"):
        assert configs[name].value == KAFKA_EXPECTED[name], name
    client = redis.Redis.from_url(stack.redis.url(), socket_timeout=5)
    try:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()


# --- the brokers enforce the 256 kB limit -------------------------------------------------------------------
def payload_sizes_delivered(subscriber: mqtt.Client, publisher: mqtt.Client, topic: str) -> list[int]:
    """Publishes payloads of exactly the limit and one byte more; the sizes the subscriber receives."""
    received: list[int] = []
    granted = threading.Event()

    def on_subscribe(client, userdata, mid, codes, properties) -> None:
        if codes[0].value < 0x80:
            granted.set()

    subscriber.on_message = lambda c, u, msg: received.append(len(msg.payload))
    subscriber.on_subscribe = on_subscribe
    subscriber.subscribe(topic, options=SubscribeOptions(qos=1))
    assert granted.wait(5), "the subscription was refused"
    for size in (MQTT_MESSAGE_LIMIT, MQTT_MESSAGE_LIMIT + 1):
        publisher.publish(topic, b"x" * size, qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)  # the larger one, had it been accepted, would have arrived right behind
    return received


@pytest.mark.integration
def test_the_local_broker_takes_256_kB_payloads_and_refuses_larger_ones(stack: Stack) -> None:
    from f2_platform.stack.services import MQTT_INTERNAL_USER

    clients = []
    for role in ("sub", "pub"):
        client_id = f"limit-{role}-{uuid.uuid4().hex[:8]}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(MQTT_INTERNAL_USER, stack.mosquitto.password)
        clients.append(client)
    try:
        for client in clients:
            assert accepted(connect(client, stack.settings.mqtt_port))
        assert payload_sizes_delivered(*clients, f"f2-test/limit/{uuid.uuid4().hex}") == [MQTT_MESSAGE_LIMIT]
    finally:
        for client in clients:
            client.loop_stop()
            client.disconnect()


@pytest.mark.integration
def test_the_compose_broker_takes_256_kB_payloads_and_refuses_larger_ones(broker: Broker) -> None:  # noqa: F811
    bridge = bridge_client(broker)
    device = device_client(broker, "aabbccddee09")
    try:
        assert accepted(connect(bridge, broker.internal))
        assert accepted(connect(device, broker.device))
        topic = "tele/f2-aabbccddee09/sensor-mode/J1/sensor-1"
        assert payload_sizes_delivered(bridge, device, topic) == [MQTT_MESSAGE_LIMIT]
    finally:
        for client in (bridge, device):
            client.loop_stop()
            client.disconnect()
