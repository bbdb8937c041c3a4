"""Acceptance of the local stack: `f2 stack status|env|up|down|reset` against the real services."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from f2_platform.stack.hermetic import make_state_dir
from f2_platform.stack.ports import free_port, port_is_free
from streaming.settings import ConnectionSettings

pytestmark = pytest.mark.integration

F2 = str(Path(sys.executable).parent / "f2")

# docs/contracts.md: the settings `f2 stack env` exports for the local stack (F2_CA_CERT and the SASL settings
# only apply to deployments with TLS/SASL, which the local stack's plaintext listeners do not use).
CONTRACT_NAMES = {
    "F2_STATE_DIR",
    "F2_MQTT_HOST",
    "F2_MQTT_PORT",
    "F2_MQTT_USERNAME",
    "F2_MQTT_PASSWORD",
    "F2_MQTT_TLS_PORT",
    "F2_KAFKA_BOOTSTRAP_SERVERS",
    "F2_KAFKA_SECURITY_PROTOCOL",
    "F2_TIMESERIES_DSN",
    "F2_REGISTRY_DSN",
    "F2_REDIS_URL",
    # The key the bridge fingerprints reader credentials with (streaming/credentials).
    "F2_CREDENTIAL_KEY_ID",
    "F2_CREDENTIAL_SECRET",
}
PORT_SETTINGS = (
    "F2_STACK_POSTGRES_PORT",
    "F2_STACK_REDIS_PORT",
    "F2_STACK_MQTT_PORT",
    "F2_STACK_MQTT_TLS_PORT",
    "F2_STACK_KAFKA_PORT",
    "F2_STACK_KAFKA_CONTROLLER_PORT",
)
# service name in `f2 stack status` -> the setting holding its port
SERVICE_PORTS = {
    "postgres": "F2_STACK_POSTGRES_PORT",
    "redis": "F2_STACK_REDIS_PORT",
    "kafka": "F2_STACK_KAFKA_PORT",
    "mosquitto": "F2_STACK_MQTT_PORT",
}


def f2(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([F2, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def parse_exports(stdout: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        words = shlex.split(line)
        assert len(words) == 2 and words[0] == "export", f"not an export line: {line!r}"
        name, sep, value = words[1].partition("=")
        assert sep == "=", f"not NAME=value: {line!r}"
        values[name] = value
    return values


def kafka_conf(exports: dict[str, str]) -> dict[str, str]:
    conf = {
        "bootstrap.servers": exports["F2_KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": exports["F2_KAFKA_SECURITY_PROTOCOL"],
    }
    for setting, prop in (
        ("F2_KAFKA_SASL_MECHANISM", "sasl.mechanism"),
        ("F2_KAFKA_SASL_USERNAME", "sasl.username"),
        ("F2_KAFKA_SASL_PASSWORD", "sasl.password"),
    ):
        if setting in exports:
            conf[prop] = exports[setting]
    return conf


def create_topic(conf: dict[str, str]) -> str:
    name = f"f2.test.{uuid.uuid4().hex[:12]}"
    admin = AdminClient(conf)  # kept referenced until the creation completes
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    futures[name].result(timeout=30)
    assert name in admin.list_topics(timeout=10).topics
    return name


def produce_one(conf: dict[str, str], topic: str, key: bytes, value: bytes) -> None:
    errors: list[object] = []
    delivered: list[object] = []

    def on_delivery(err: object, msg: object) -> None:
        (errors if err is not None else delivered).append(err or msg)

    producer = Producer({**conf, "acks": "all", "message.timeout.ms": 30000})
    producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
    assert producer.flush(40) == 0, "the message was not delivered in time"
    assert errors == [] and len(delivered) == 1


def consume_all(conf: dict[str, str], topic: str, expected: int = 1, timeout: float = 40) -> list[tuple[bytes, bytes]]:
    """Read the topic's single partition from the beginning until `expected` records arrived."""
    consumer = Consumer(
        {
            **conf,
            "group.id": f"f2-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    records: list[tuple[bytes, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                continue
            records.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return records


def mqtt_connect(
    host: str, port: int, username: str | None, password: str | None, timeout: float = 10
) -> tuple[mqtt.Client, mqtt.ReasonCode]:
    """Connect and return the client (loop running) with the broker's CONNACK reason code."""
    done = threading.Event()
    result: list[mqtt.ReasonCode] = []

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode, props: object
    ) -> None:
        if not result:
            result.append(reason)
        done.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"f2-test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    assert done.wait(timeout), "no CONNACK from the broker"
    return client, result[0]


def mqtt_close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def with_password(url: str, password: str | None) -> str:
    """The same URL with another password (None: no password at all)."""
    parts = urlsplit(url)
    userinfo = parts.username or ""
    if password is not None:
        userinfo += f":{password}"
    netloc = f"{userinfo}@{parts.hostname}:{parts.port}" if userinfo else f"{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def clean_env() -> dict[str, str]:
    """The caller's environment without any F2_* or libpq PG* setting, so only what a test passes counts."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("F2_", "PG"))}


# --- the session stack -------------------------------------------------------------------------------


def test_status_lists_every_service_answering(stack_env: dict[str, str]) -> None:
    result = f2("stack", "status", env=stack_env)
    assert result.returncode == 0, result.stdout + result.stderr
    for service, setting in SERVICE_PORTS.items():
        port = stack_env[setting]
        assert re.search(rf"^{service}\s+{port}\s+\d+\s+answering$", result.stdout, re.MULTILINE), (
            f"{service} on port {port} not shown answering:\n{result.stdout}"
        )


@pytest.fixture(scope="module")
def exports(stack_env: dict[str, str]) -> dict[str, str]:
    result = f2("stack", "env", env=stack_env)
    assert result.returncode == 0, result.stderr
    return parse_exports(result.stdout)


def test_env_exports_the_contract_names(exports: dict[str, str], stack_env: dict[str, str]) -> None:
    assert set(exports) >= CONTRACT_NAMES, f"missing: {sorted(CONTRACT_NAMES - set(exports))}"
    assert all(name.startswith("F2_") for name in exports)
    assert exports["F2_STATE_DIR"] == stack_env["F2_STATE_DIR"]
    assert exports["F2_MQTT_PORT"] == stack_env["F2_STACK_MQTT_PORT"]
    assert exports["F2_MQTT_TLS_PORT"] == stack_env["F2_STACK_MQTT_TLS_PORT"]
    assert exports["F2_KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{stack_env['F2_STACK_KAFKA_PORT']}"
    assert urlsplit(exports["F2_TIMESERIES_DSN"]).port == int(stack_env["F2_STACK_POSTGRES_PORT"])
    assert urlsplit(exports["F2_REDIS_URL"]).port == int(stack_env["F2_STACK_REDIS_PORT"])


def test_env_exports_the_generated_credential_key(exports: dict[str, str], stack_env: dict[str, str]) -> None:
    secret_file = Path(stack_env["F2_STATE_DIR"]) / "secrets" / "credential-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert exports["F2_CREDENTIAL_SECRET"] == secret_file.read_text().strip()
    assert len(exports["F2_CREDENTIAL_SECRET"]) >= 16
    assert exports["F2_CREDENTIAL_KEY_ID"] == "k1"
    # Generated once: a second `f2 stack env` exports the same key (fingerprints stay comparable).
    again = parse_exports(f2("stack", "env", env=stack_env).stdout)
    assert again["F2_CREDENTIAL_SECRET"] == exports["F2_CREDENTIAL_SECRET"]


def psql(dsn: str, query: str) -> str:
    result = subprocess.run(
        ["psql", dsn, "-tAc", query], env=clean_env(), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_timescaledb_through_psql(exports: dict[str, str], migrated: ConnectionSettings) -> None:
    dsn = exports["F2_TIMESERIES_DSN"]
    # Installed in the server as soon as the stack is up ...
    available = psql(dsn, "select default_version from pg_available_extensions where name='timescaledb'")
    assert re.fullmatch(r"2\.\d+\.\d+", available), repr(available)
    # ... and created in the f2 database by `f2 db migrate` (the `migrated` fixture).
    created = psql(dsn, "select extversion from pg_extension where extname='timescaledb'")
    assert re.fullmatch(r"2\.\d+\.\d+", created), repr(created)
    assert created == available


def test_kafka_round_trip(exports: dict[str, str]) -> None:
    conf = kafka_conf(exports)
    topic = create_topic(conf)
    key, value = b"aabbccddee01", f"hello {uuid.uuid4().hex}".encode()
    produce_one(conf, topic, key, value)
    assert consume_all(conf, topic) == [(key, value)]


def test_mqtt_qos1_round_trip(exports: dict[str, str]) -> None:
    host, port = exports["F2_MQTT_HOST"], int(exports["F2_MQTT_PORT"])
    user, password = exports["F2_MQTT_USERNAME"], exports["F2_MQTT_PASSWORD"]
    topic = f"f2-test/{uuid.uuid4().hex}"
    payload = b'{"timestamp": "2023-05-25 15:13:10.543400", "status": true}'
    subscribed = threading.Event()
    received: list[mqtt.MQTTMessage] = []
    got = threading.Event()

    subscriber, reason = mqtt_connect(host, port, user, password)
    publisher = None
    try:
        assert not reason.is_failure, str(reason)

        def on_subscribe(
            client: mqtt.Client, userdata: object, mid: int, codes: list[mqtt.ReasonCode], props: object
        ) -> None:
            assert [c.value for c in codes] == [1]  # granted QoS 1
            subscribed.set()

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            received.append(msg)
            got.set()

        subscriber.on_subscribe = on_subscribe
        subscriber.on_message = on_message
        subscriber.subscribe(topic, qos=1)
        assert subscribed.wait(10), "no SUBACK"

        publisher, reason = mqtt_connect(host, port, user, password)
        assert not reason.is_failure, str(reason)
        info = publisher.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        assert got.wait(10), "the published message did not arrive"
    finally:
        mqtt_close(subscriber)
        if publisher is not None:
            mqtt_close(publisher)
    assert len(received) == 1
    assert received[0].topic == topic
    assert received[0].payload == payload
    assert received[0].qos == 1


def test_redis_ping(exports: dict[str, str]) -> None:
    client = redis.Redis.from_url(exports["F2_REDIS_URL"], socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


@pytest.mark.parametrize("password", [None, "wrong-password"], ids=["no-password", "wrong-password"])
def test_postgres_refuses_bad_credentials(exports: dict[str, str], password: str | None) -> None:
    dsn = with_password(exports["F2_TIMESERIES_DSN"], password)
    # passfile: never let a ~/.pgpass supply the password the test withholds.
    with pytest.raises(psycopg.OperationalError) as excinfo:
        psycopg.connect(dsn, connect_timeout=5, passfile="/nonexistent").close()
    message = str(excinfo.value)
    assert ("password authentication failed" in message) or ("no password supplied" in message), message


@pytest.mark.parametrize("password", [None, "wrong-password"], ids=["no-password", "wrong-password"])
def test_redis_refuses_bad_credentials(exports: dict[str, str], password: str | None) -> None:
    client = redis.Redis.from_url(with_password(exports["F2_REDIS_URL"], password), socket_timeout=5)
    try:
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)) as excinfo:
            client.ping()
    finally:
        client.close()
    if password is None:
        assert "NOAUTH" in str(excinfo.value) or isinstance(excinfo.value, redis.AuthenticationError)
    else:
        assert isinstance(excinfo.value, redis.AuthenticationError), repr(excinfo.value)


@pytest.mark.parametrize(
    ("username", "password"),
    [(None, None), ("f2-internal", "wrong-password"), ("someone-else", "wrong-password")],
    ids=["anonymous", "wrong-password", "unknown-user"],
)
def test_mqtt_refuses_bad_credentials(exports: dict[str, str], username: str | None, password: str | None) -> None:
    if username == "f2-internal":
        username = exports["F2_MQTT_USERNAME"]
    client, reason = mqtt_connect(exports["F2_MQTT_HOST"], int(exports["F2_MQTT_PORT"]), username, password)
    mqtt_close(client)
    assert reason.is_failure, f"the broker accepted {username!r}: {reason}"
    # MQTT 5: 0x86 Bad User Name or Password, 0x87 Not authorized
    assert reason.value in (0x86, 0x87), str(reason)


# --- separate stacks ---------------------------------------------------------------------------------


def unused_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999), so that no client connection of the
    session stack can take it between now and `f2 stack up` (free_port() hands out ephemeral ports)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if port_is_free("127.0.0.1", port):
            return port
    return free_port()


def own_stack_env(state_dir: Path, **ports: int) -> dict[str, str]:
    env = clean_env()
    env["F2_STATE_DIR"] = str(state_dir)
    chosen = set(ports.values())
    for setting in PORT_SETTINGS:
        if setting not in ports:
            port = unused_port()
            while port in chosen:
                port = unused_port()
            ports[setting] = port
            chosen.add(port)
        env[setting] = str(ports[setting])
    env["F2_STACK_KAFKA_PARTITIONS"] = "1"
    return env


SERVICE_MARKERS = (b"postgres", b"redis-server", b"kafka.Kafka", b"mosquitto")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_leftovers(state_dir: Path) -> None:
    """After `f2 stack down`: stop any process this test's stack left running, so that a failed test leaks
    nothing. Only processes with the (unique) state folder on their command line, or named in its pid files
    and still running a stack service, are touched."""
    pidfiles = [*state_dir.glob("run/*.pid"), state_dir / "postgres" / "data" / "postmaster.pid"]
    from_pidfiles: set[int] = set()
    for pidfile in pidfiles:
        with contextlib.suppress(OSError, ValueError, IndexError):
            from_pidfiles.add(int(pidfile.read_text().split()[0]))
    leftovers = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        pid = int(proc.name)
        if str(state_dir).encode() in cmdline or (
            pid in from_pidfiles and any(marker in cmdline for marker in SERVICE_MARKERS)
        ):
            leftovers.append(pid)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in leftovers) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in leftovers:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_up_refuses_a_busy_port() -> None:
    state_dir = make_state_dir("f2-test-busy-")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        busy = squatter.getsockname()[1]
        env = own_stack_env(state_dir, F2_STACK_POSTGRES_PORT=busy)
        try:
            result = f2("stack", "up", env=env, timeout=120)
            assert result.returncode == 1, result.stdout + result.stderr
            assert f"port {busy}" in result.stderr
            assert "busy" in result.stderr
            assert "F2_STACK_POSTGRES_PORT" in result.stderr
            assert "Traceback" not in result.stderr
        finally:
            f2("stack", "down", env=env, timeout=180)
            stop_leftovers(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture()
def own_stack() -> Iterator[tuple[Path, dict[str, str]]]:
    state_dir = make_state_dir("f2-test-lifecycle-")
    env = own_stack_env(state_dir)
    try:
        yield state_dir, env
    finally:
        if state_dir.exists():
            f2("stack", "down", env=env, timeout=240)
        stop_leftovers(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.mark.slow
def test_lifecycle_keeps_data_across_down_and_up(own_stack: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = own_stack

    up = f2("stack", "up", env=env, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    exports = parse_exports(f2("stack", "env", env=env).stdout)
    assert exports["F2_STATE_DIR"] == str(state_dir)
    assert urlsplit(exports["F2_TIMESERIES_DSN"]).port == int(env["F2_STACK_POSTGRES_PORT"])
    assert urlsplit(exports["F2_TIMESERIES_DSN"]).path == "/f2"

    note = f"kept {uuid.uuid4().hex}"
    with psycopg.connect(exports["F2_TIMESERIES_DSN"], autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE lifecycle_probe (id integer PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO lifecycle_probe VALUES (1, %s)", (note,))
    conf = kafka_conf(exports)
    topic = create_topic(conf)
    key, value = b"lifecycle", note.encode()
    produce_one(conf, topic, key, value)

    down = f2("stack", "down", env=env, timeout=240)
    assert down.returncode == 0, down.stdout + down.stderr
    status = f2("stack", "status", env=env)
    assert status.returncode == 1, status.stdout
    for service, setting in SERVICE_PORTS.items():
        stopped = rf"^{service}\s+{env[setting]}\s+-\s+stopped$"
        assert re.search(stopped, status.stdout, re.MULTILINE), status.stdout

    up = f2("stack", "up", env=env, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    status = f2("stack", "status", env=env)
    assert status.returncode == 0, status.stdout
    # Secrets are kept across down/up: the same exported credentials still work.
    assert parse_exports(f2("stack", "env", env=env).stdout) == exports
    with psycopg.connect(exports["F2_TIMESERIES_DSN"], connect_timeout=10) as conn:
        assert conn.execute("SELECT id, note FROM lifecycle_probe").fetchall() == [(1, note)]
    assert consume_all(conf, topic) == [(key, value)]

    reset = f2("stack", "reset", "--yes", env=env, timeout=240)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert not state_dir.exists()
    status = f2("stack", "status", env=env)
    assert status.returncode == 1
