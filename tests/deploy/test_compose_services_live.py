"""The Compose deployment's service configurations, run for real with this machine's Mosquitto, Redis and
PostgreSQL (same major versions as the images): the broker's listeners, password file and ACL from
bootstrap.py; Redis's ACL users; the least-privilege grants; the Dagster instance on dagster-postgres."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
import redis
import yaml
from paho.mqtt.subscribeoptions import SubscribeOptions

from f2_platform.stack.hermetic import make_state_dir
from f2_platform.stack.ports import free_port
from tests.deploy.support import COMPOSE_FILE, DEPLOY, VENV_BIN
from tests.deploy.test_compose import load_bootstrap

pytestmark = pytest.mark.integration

COMPOSE_DIR = COMPOSE_FILE.parent


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # Traversable by the services' own users (Mosquitto drops to `mosquitto`), unlike pytest's tmp folders.
    path = make_state_dir("f2-compose-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def secrets_dir(workdir: Path) -> Path:
    out = workdir / "secrets"
    load_bootstrap().write_all(out, [str(VENV_BIN / "f2")], [])
    return out


def secret_paths(out: Path) -> dict[str, Path]:
    declared = yaml.safe_load(COMPOSE_FILE.read_text())["secrets"]
    return {name: out / spec["file"].removeprefix("./secrets/") for name, spec in declared.items()}


def run_compose_healthcheck(service: str, replacements: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The service's Compose health check, run here with paths and ports swapped for this machine's."""
    test = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = test[1].replace("$$", "$")
    for old, new in replacements.items():
        assert old in command, f"{old!r} not in {service}'s health check"
        command = command.replace(old, new)
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30, check=False)


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} not open; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- Mosquitto ----------------------------------------------------------------------------------------------
class Broker:
    def __init__(self, internal: int, device: int, secrets: Path) -> None:
        self.internal, self.device, self.secrets = internal, device, secrets


@pytest.fixture(scope="module")
def broker(secrets_dir: Path, workdir: Path) -> Iterator[Broker]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    work = workdir / "mosquitto"
    work.mkdir()
    internal, device = free_port(), free_port()
    conf = (COMPOSE_DIR / "mosquitto" / "mosquitto.conf").read_text()
    for name, path in secret_paths(secrets_dir).items():
        conf = conf.replace(f"/run/secrets/{name}\n", f"{path}\n")
    # A copy: the checkout's folders need not be traversable by the `mosquitto` user (a private temp dir).
    shutil.copy(COMPOSE_DIR / "mosquitto" / "acl", work / "acl")
    conf = conf.replace("/mosquitto/config/acl", str(work / "acl"))
    conf = conf.replace("/mosquitto/data/", f"{work}/data/")
    conf = conf.replace("listener 1883\n", f"listener {internal} 127.0.0.1\n")
    conf = conf.replace("listener 8883\n", f"listener {device} 127.0.0.1\n")
    assert not re.search(r"/run/secrets/|^\S+ /mosquitto/", conf, flags=re.MULTILINE)
    (work / "data").mkdir()
    (work / "mosquitto.conf").write_text(conf)
    if os.geteuid() == 0:  # Mosquitto drops to its own user: let it read what Compose would mount for it
        account = pwd.getpwnam("mosquitto")
        for path in [work, work / "data", work / "acl", secrets_dir, secrets_dir / "pki", *secrets_dir.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
    log = work / "mosquitto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([mosquitto, "-c", str(work / "mosquitto.conf")], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(internal, proc, log)
        wait_port(device, proc, log)
        yield Broker(internal, device, secrets_dir)
    finally:
        stop(proc)


def mqtt_client(client_id: str) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def connect(client: mqtt.Client, port: int) -> mqtt.ReasonCode | None:
    result: dict[str, mqtt.ReasonCode] = {}
    done = threading.Event()

    def on_connect(c, userdata, flags, reason, properties) -> None:
        result["reason"] = reason
        done.set()

    client.on_connect = on_connect
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except (ssl.SSLError, OSError):
        return None
    client.loop_start()
    done.wait(10)
    return result.get("reason")


def accepted(reason: mqtt.ReasonCode | None) -> bool:
    return reason is not None and reason.value == 0


def refused(reason: mqtt.ReasonCode | None) -> bool:
    """Refused in CONNACK, or the connection never came about (TLS handshake refused, timeout)."""
    return reason is None or reason.is_failure


def bridge_client(broker: Broker, password: str | None = None) -> mqtt.Client:
    client = mqtt_client(f"test-bridge-{uuid.uuid4().hex[:8]}")
    pw = password if password is not None else (broker.secrets / "mqtt_bridge_password").read_text()
    client.username_pw_set("f2-bridge", pw)
    return client


def device_client(broker: Broker, mac: str, with_cert: bool = True) -> mqtt.Client:
    from certs.authority import CertificateAuthority

    client = mqtt_client(f"device-{mac}")
    pki = broker.secrets / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if with_cert:
        issued = CertificateAuthority(pki, broker_user=None).issue_device(mac)
        key = broker.secrets.parent / f"{mac}.key"
        key.write_bytes(issued.key_pem or b"")
        context.load_cert_chain(str(issued.cert_path), str(key))
    client.tls_set_context(context)
    return client


def test_internal_listener_requires_the_bridge_credentials(broker: Broker) -> None:
    anonymous = mqtt_client("anonymous")
    wrong = bridge_client(broker, password="wrong")
    good = bridge_client(broker)
    try:
        assert refused(connect(anonymous, broker.internal))
        assert refused(connect(wrong, broker.internal))
        assert accepted(connect(good, broker.internal))
    finally:
        for client in (anonymous, wrong, good):
            client.loop_stop()
            client.disconnect()


def test_broker_health_check_passes(broker: Broker) -> None:
    result = run_compose_healthcheck(
        "mosquitto",
        {
            "-p 1883": f"-p {broker.internal}",
            "/run/secrets/mqtt_bridge_password": str(broker.secrets / "mqtt_bridge_password"),
        },
    )
    assert result.returncode == 0, result.stderr


def test_device_publishes_only_its_own_topics_and_the_bridge_receives_them(broker: Broker) -> None:
    received: list[str] = []
    granted = threading.Event()
    bridge = bridge_client(broker)
    bridge.on_message = lambda c, u, msg: received.append(msg.topic)

    def on_subscribe(client, userdata, mid, codes, properties) -> None:
        if codes[0].value < 0x80:
            granted.set()

    bridge.on_subscribe = on_subscribe
    device = device_client(broker, "aabbccddee01")
    try:
        assert accepted(connect(bridge, broker.internal))
        bridge.subscribe("$share/f2-bridge/tele/+/+/+/+", options=SubscribeOptions(qos=1))
        assert granted.wait(5), "the bridge may hold its shared subscription"
        assert accepted(connect(device, broker.device))
        device.publish("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", b"{}", qos=1).wait_for_publish(5)
        device.publish("tele/f2-aabbccddee02/sensor-mode/J1/sensor-1", b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        assert received == ["tele/f2-aabbccddee01/sensor-mode/J1/sensor-1"], "another MAC's topic is refused"
    finally:
        for client in (bridge, device):
            client.loop_stop()
            client.disconnect()


def test_device_port_refuses_clients_without_a_certificate(broker: Broker) -> None:
    client = device_client(broker, "aabbccddee03", with_cert=False)
    try:
        assert refused(connect(client, broker.device))
    finally:
        client.loop_stop()


# --- Redis --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_port(secrets_dir: Path, workdir: Path) -> Iterator[int]:
    work = workdir / "redis"
    work.mkdir()
    port = free_port()
    conf = (COMPOSE_DIR / "redis" / "redis.conf").read_text()
    conf = conf.replace("/run/secrets/redis_users.acl", str(secret_paths(secrets_dir)["redis_users.acl"]))
    conf = re.sub(r"^bind .*$", "bind 127.0.0.1", conf, flags=re.MULTILINE)
    conf = re.sub(r"^port .*$", f"port {port}\ndir {work}", conf, flags=re.MULTILINE)
    (work / "redis.conf").write_text(conf)
    log = work / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["redis-server", str(work / "redis.conf")], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, log)
        yield port
    finally:
        stop(proc)


def redis_from_secret(secrets_dir: Path, name: str, port: int) -> redis.Redis:
    url = (secrets_dir / name).read_text().strip().replace("@redis:6379", f"@127.0.0.1:{port}")
    return redis.Redis.from_url(url, socket_timeout=2)


def test_redis_users_have_only_their_rights(secrets_dir: Path, redis_port: int) -> None:
    processor = redis_from_secret(secrets_dir, "processor_redis_url", redis_port)
    assert processor.ping()
    assert processor.set("f2:topology:v1:aabbccddee01", b"x", ex=30)
    assert processor.get("f2:topology:v1:aabbccddee01") == b"x"
    with pytest.raises(redis.exceptions.NoPermissionError):
        processor.get("other:key")
    with pytest.raises(redis.exceptions.NoPermissionError):
        processor.flushall()
    anonymous = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=2)
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        anonymous.get("f2:topology:v1:aabbccddee01")
    health = redis.Redis(
        host="127.0.0.1",
        port=redis_port,
        username="f2-health",
        password=(secrets_dir / "redis_health_password").read_text(),
        socket_timeout=2,
    )
    assert health.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        health.get("f2:topology:v1:aabbccddee01")
    check = run_compose_healthcheck(
        "redis",
        {
            "/run/secrets/redis_health_password": str(secrets_dir / "redis_health_password"),
            "redis-cli ": f"redis-cli -p {redis_port} ",
        },
    )
    assert check.returncode == 0, check.stderr


# --- PostgreSQL: grants.sql, in a transaction that is rolled back -------------------------------------------
def test_grants_give_each_role_only_what_it_needs(migrated) -> None:
    from streaming.sink.event_sql import (
        CORRECT_MANY_SQL,
        CORRECT_SQL,
        INSERT_EVENTS_SQL,
        LOCK_PRESENCE_SQL,
        OFFLINE_SQL,
        ORDER_SQL,
        PRESENCE_SQL,
    )
    from streaming.sink.sql import LATEST_MERGE_SQL, LATEST_SQL, STAGING_DDL, UPSERT_SQL

    grants = (DEPLOY.parent / "sql" / "grants.sql").read_text()
    with psycopg.connect(migrated.timeseries_dsn) as conn:
        try:
            for role in ("f2_processor", "f2_sink", "f2_grafana"):
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f"CREATE ROLE {role} NOLOGIN")
            conn.execute(grants)
            conn.execute(grants)  # re-running changes nothing

            def denied(role: str, sql: str) -> bool:
                try:
                    with conn.transaction():
                        conn.execute(f"SET LOCAL ROLE {role}")
                        conn.execute(sql)
                    return False
                except psycopg.errors.InsufficientPrivilege:
                    return True

            def allowed(role: str, *statements: str) -> None:
                with conn.transaction():
                    conn.execute(f"SET LOCAL ROLE {role}")
                    for sql in statements:
                        conn.execute(sql)

            allowed(
                "f2_sink",
                STAGING_DDL,
                "INSERT INTO f2_sink_staging VALUES ('2024-01-01T00:00:00Z', 999001, 999002, 1.5)",
                UPSERT_SQL,
                LATEST_SQL,
                LATEST_MERGE_SQL,
            )
            assert denied("f2_sink", "DELETE FROM decoded_data WHERE device_id = 999001")
            # Events: the sink's own statements, as its role, on rows of a MAC no controller has.
            allowed(
                "f2_sink",
                *(
                    sql.replace("%s", "NULL")
                    for sql in (INSERT_EVENTS_SQL, ORDER_SQL, CORRECT_SQL, CORRECT_MANY_SQL, PRESENCE_SQL)
                ),
                LOCK_PRESENCE_SQL.replace("%s", "ARRAY['ffff00000001']"),
                OFFLINE_SQL,
                'INSERT INTO device_events ("time", controller_mac, connector, component, kind, state) '
                "VALUES ('2024-01-01T00:00:00Z', 'ffff00000001', 1, 'strike-1', 'state', 'powered')",
                "UPDATE device_events SET previous_state = 'x' WHERE controller_mac = 'ffff00000001'",
                "INSERT INTO component_states VALUES ('ffff00000001', 1, 'strike-1', NULL, NULL, 'powered', "
                "'2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
                "UPDATE component_states SET state = 'unpowered' WHERE controller_mac = 'ffff00000001'",
                "INSERT INTO controller_presence VALUES ('ffff00000001', NULL, 'online', now(), now(), 30)",
                "UPDATE controller_presence SET state = 'offline' WHERE controller_mac = 'ffff00000001'",
            )
            for table in ("device_events", "component_states", "controller_presence"):
                assert denied("f2_sink", f"DELETE FROM {table} WHERE controller_mac = 'ffff00000001'")  # noqa: S608
            assert denied("f2_sink", 'SELECT * FROM "VtDevice".devices')
            allowed(
                "f2_processor",
                'SELECT macaddress FROM "VtDevice".devices',
                'SELECT * FROM "VtDevice".f2_registry_version',
            )
            assert denied("f2_processor", "INSERT INTO \"VtDevice\".devicetypes (typename) VALUES ('x')")
            assert denied("f2_processor", "SELECT * FROM decoded_data")
            allowed("f2_grafana", "SELECT count(*) FROM decoded_data", "SELECT count(*) FROM latest_values")
            allowed(
                "f2_grafana",
                "SELECT count(*) FROM device_events",
                "SELECT count(*) FROM component_states",
                "SELECT count(*) FROM controller_presence",
                "SELECT * FROM f2_previous_state('ffff00000001', 1::smallint, 'strike-1', now())",
            )
            assert denied("f2_grafana", "UPDATE component_states SET state = 'x'")
            assert denied("f2_grafana", "DELETE FROM device_events")
            assert denied("f2_grafana", "DELETE FROM latest_values")
            assert denied("f2_grafana", 'SELECT * FROM "VtDevice".devices')
        finally:
            conn.rollback()


# --- Dagster instance of the Compose deployment on a real PostgreSQL ----------------------------------------
def test_dagster_instance_runs_on_dagster_postgres(migrated, tmp_path, monkeypatch) -> None:
    from urllib.parse import urlsplit

    from dagster import DagsterInstance
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    database = f"dagster_deploy_{uuid.uuid4().hex[:8]}"
    dsn = urlsplit(migrated.timeseries_dsn)
    admin = dsn._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        shutil.copy(DEPLOY / "dagster" / "dagster.yaml", tmp_path / "dagster.yaml")
        monkeypatch.setenv("DAGSTER_PG_HOST", dsn.hostname or "")
        monkeypatch.setenv("DAGSTER_PG_DB", database)
        monkeypatch.setenv("DAGSTER_PG_USERNAME", dsn.username or "")
        monkeypatch.setenv("DAGSTER_PG_PASSWORD", dsn.password or "")
        monkeypatch.setenv("DAGSTER_PG_PORT", str(dsn.port))
        instance = DagsterInstance.from_config(str(tmp_path))
        try:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            assert isinstance(instance.run_launcher, DefaultRunLauncher)
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)  # run_queue
            assert instance.get_runs() == []
        finally:
            instance.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')


# --- Grafana's SQL, as Grafana's role would run it against the migrated schema ------------------------------
def grafana_sql(sql: str) -> str:
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 BETWEEN now() - INTERVAL '7 days' AND now()", sql)
    return sql.replace("$device", "1").replace("$datapoint", "1")


def test_dashboard_sql_runs_as_grafana(migrated) -> None:
    import json

    queries = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            queries += [(path.name, panel["title"], t["rawSql"]) for t in panel.get("targets", []) if "rawSql" in t]
        queries += [(path.name, v["name"], v["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert queries
    grants = (DEPLOY.parent / "sql" / "grants.sql").read_text()
    with psycopg.connect(migrated.timeseries_dsn) as conn:
        try:
            for role in ("f2_processor", "f2_sink", "f2_grafana"):
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f"CREATE ROLE {role} NOLOGIN")
            conn.execute(grants)
            conn.execute("SET LOCAL ROLE f2_grafana")
            for dashboard, title, sql in queries:
                with conn.transaction():
                    try:
                        conn.execute(grafana_sql(sql)).fetchall()
                    except psycopg.Error as exc:
                        pytest.fail(f"{dashboard} / {title}: {exc}")
        finally:
            conn.rollback()


# --- f2-init against the real stack: idempotent preparation -------------------------------------------------
def test_f2_init_prepares_and_is_idempotent(migrated, stack_env) -> None:
    import sys

    from tests.pipeline import env_without_proxy

    env = env_without_proxy(stack_env) | {"F2_INIT_WAIT_S": "30", "F2_INIT_KAFKA_PARTITIONS": "4"}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, str(DEPLOY / "docker" / "f2_init.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert "registry: schema up to date" in result.stdout
    assert "timeseries: schema up to date" in result.stdout
    assert "topics already exist" in result.stdout
    assert result.stdout.rstrip().endswith("f2-init: done")


# --- The Compose database bootstrap on a private PostgreSQL + TimescaleDB -----------------------------------
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def compose_postgres(workdir: Path, secrets_dir: Path) -> Iterator[int]:
    """A throwaway PostgreSQL prepared as the timescaledb image does before its initdb.d scripts: superuser
    password from the secret, database f2 with the timescaledb extension."""
    import signal

    data, sock = workdir / "pg" / "data", workdir / "pg" / "sock"
    sock.mkdir(parents=True)
    pwfile = workdir / "pg" / "pw"
    pwfile.write_text((secrets_dir / "postgres_password").read_text())
    user = None
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in (workdir / "pg", sock, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
        user = "postgres"
    subprocess.run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        user=user,
        capture_output=True,
        check=True,
    )
    port = free_port()
    log = workdir / "pg" / "postgres.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-c",
                f"port={port}",
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sock}",
                "-c",
                "shared_preload_libraries=timescaledb",
                "-c",
                "timescaledb.telemetry_level=off",
            ],
            user=user,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc, log)
        superuser = f"postgresql://postgres:{pwfile.read_text()}@127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"{superuser}/postgres", autocommit=True) as conn:
                    conn.execute("CREATE DATABASE f2")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        with psycopg.connect(f"{superuser}/f2", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        yield port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def local_dsn(secrets_dir: Path, name: str, port: int) -> str:
    return (secrets_dir / name).read_text().strip().replace("@timescaledb:5432", f"@127.0.0.1:{port}")


def test_compose_database_bootstrap_roles_migrations_grants(
    compose_postgres: int, secrets_dir: Path, workdir: Path, stack_env
) -> None:
    """10-f2-roles.sh creates the roles from the secrets; f2-init migrates as f2_owner and applies the grants;
    then each role logs in with its bootstrap password and has exactly its rights."""
    import sys

    from streaming.sink.sql import LATEST_SQL, STAGING_DDL, UPSERT_SQL
    from tests.pipeline import env_without_proxy

    port = compose_postgres
    script = (COMPOSE_DIR / "timescaledb" / "10-f2-roles.sh").read_text()
    (workdir / "10-f2-roles.sh").write_text(script.replace("/run/secrets/", f"{secrets_dir}/"))
    env = {
        "PATH": os.environ["PATH"],
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "f2",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGPASSWORD": (secrets_dir / "postgres_password").read_text(),
    }
    roles = subprocess.run(
        ["sh", str(workdir / "10-f2-roles.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert roles.returncode == 0, roles.stderr

    owner = local_dsn(secrets_dir, "owner_dsn", port)
    init_env = env_without_proxy(stack_env) | {
        "F2_TIMESERIES_DSN": owner,
        "F2_REGISTRY_DSN": owner,
        "F2_INIT_WAIT_S": "30",
        "F2_INIT_GRANTS_SQL": str(DEPLOY.parent / "sql" / "grants.sql"),
    }
    init = subprocess.run(
        [sys.executable, str(DEPLOY / "docker" / "f2_init.py")],
        env=init_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert "grants applied" in init.stdout

    with psycopg.connect(local_dsn(secrets_dir, "sink_timeseries_dsn", port)) as sink:
        sink.execute(STAGING_DDL)
        sink.execute("INSERT INTO f2_sink_staging VALUES (now() - INTERVAL '2 hours', 1, 1, 2.5)")
        sink.execute(UPSERT_SQL)
        sink.execute(LATEST_SQL)
        sink.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sink.execute("DELETE FROM decoded_data")
        sink.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sink.execute('SELECT * FROM "VtDevice".devices')
    with psycopg.connect(local_dsn(secrets_dir, "processor_registry_dsn", port)) as processor:
        processor.execute('SELECT count(*) FROM "VtDevice".devices').fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            processor.execute("SELECT * FROM decoded_data")
    # The enrollment service's own role: claiming codes and its ledger, nothing else (sql/grants_enrollment.sql).
    assert "grants_enrollment.sql in the registry's database" in init.stdout
    with psycopg.connect(local_dsn(secrets_dir, "enroll_registry_dsn", port), autocommit=True) as enroll:
        assert enroll.execute('SELECT macaddress, claimingcode FROM "VtDevice".devices').fetchall() == []
        enroll.execute(
            'INSERT INTO "VtDevice".f2_enrollments (mac, serial, not_after, key_source) '
            "VALUES ('aabbccddee99', '01', now() + INTERVAL '1 year', 'csr')"
        )
        for refused in (
            'INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value) VALUES (now(), 1, 1, 1.0)',
            "UPDATE \"VtDevice\".devices SET claimingcode = 'x'",
            'SELECT devicename FROM "VtDevice".devices',
            'DELETE FROM "VtDevice".f2_enrollments',
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                enroll.execute(refused)
    grafana_pw = (secrets_dir / "f2_grafana_db_password").read_text()
    with psycopg.connect(f"postgresql://f2_grafana:{grafana_pw}@127.0.0.1:{port}/f2") as grafana:
        assert grafana.execute("SELECT count(*) FROM decoded_data").fetchone() == (1,)
    dagster_pw = (secrets_dir / "dagster_pg_password").read_text()
    with psycopg.connect(f"postgresql://dagster:{dagster_pw}@127.0.0.1:{port}/dagster") as dagster:
        dagster.execute("CREATE TABLE owned_by_dagster (id int)")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://f2_sink:wrong@127.0.0.1:{port}/f2").close()
