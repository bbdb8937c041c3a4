"""Security acceptance: device mTLS with per-device ACLs, credentials on every internal hop, least privilege,
input limits and credential redaction — against the real broker, Kafka, PostgreSQL and Redis."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
import redis
from confluent_kafka import Consumer, KafkaException
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import CertificateAuthority
from f2_platform.stack.manager import Stack
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.realtime import TopicReader, publish, wait_for

pytestmark = pytest.mark.integration

MAC_A, MAC_B = "aabbccddee01", "aabbccddee02"


@pytest.fixture(scope="module")
def ca(stack: Stack) -> CertificateAuthority:
    return stack.mosquitto.pki()


def _write_pair(dir_: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    crt, k = dir_ / f"{name}.crt", dir_ / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return crt, k


def _mint(
    issuer_cert: x509.Certificate | None, issuer_key: ec.EllipticCurvePrivateKey | None, cn: str, days: int = 30
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A client certificate made here, independently of the platform's PKI code (self-signed if no issuer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return cert, key


class Device:
    """An MQTT client on the device (TLS) listener."""

    def __init__(
        self, conn: ConnectionSettings, certfile: Path | None, keyfile: Path | None, ca_cert: Path | None = None
    ) -> None:
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.received: list[str] = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        ctx = ssl.create_default_context(cafile=str(ca_cert or conn.ca_cert))
        ctx.check_hostname = False
        if certfile is not None:
            ctx.load_cert_chain(str(certfile), str(keyfile))
        self.client.tls_set_context(ctx)
        self.client.on_connect = lambda c, u, f, rc, p: (self.refused if rc.is_failure else self.connected).set()
        self.client.on_message = lambda c, u, m: self.received.append(m.topic)
        self.conn = conn

    def connect(self, timeout: float = 5.0) -> bool:
        try:
            self.client.connect(self.conn.mqtt_host, self.conn.mqtt_tls_port, keepalive=10)
        except (OSError, ssl.SSLError):
            return False
        self.client.loop_start()
        ok = self.connected.wait(timeout)
        # A rejected certificate often surfaces only on the first read: make sure the session stays up.
        time.sleep(0.5)
        return ok and self.client.is_connected()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _raw_records_for(reader: TopicReader, mqtt_topic: str, seconds: float) -> list[bytes | None]:
    return [v for _, v, h in reader.poll(seconds) if h.get(topics.H_MQTT_TOPIC) == mqtt_topic]


def test_device_cannot_write_or_read_another_devices_topics(migrated, ca, pipeline, tmp_path) -> None:
    issued = ca.issue_device(MAC_A, days=30)
    raw = TopicReader(migrated, topics.RAW)
    a = Device(migrated, issued.cert_path, issued.key_path)
    assert a.connect(), "A's own certificate must be accepted"
    a.client.subscribe([(f"cmnd/f2-{MAC_B}/#", 1), (f"cmnd/f2-{MAC_A}/#", 1)])
    time.sleep(0.5)
    own = f"tele/f2-{MAC_A}/sensor-mode/J1/sensor-1"
    other = f"tele/f2-{MAC_B}/sensor-mode/J2/sensor-2"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    body = json.dumps({"timestamp": stamp, "data": "01 03 06 09 30 11 9E 02 64 05 B1"})
    publish(
        migrated,
        [
            (f"cmnd/f2-{MAC_B}/sensor-mode/J1/relay", b"secret-for-b"),
            (f"cmnd/f2-{MAC_A}/sensor-mode/J1/relay", b"for-a"),
        ],
    )
    wait_for(lambda: f"cmnd/f2-{MAC_A}/sensor-mode/J1/relay" in a.received, 10, what="A's own command")
    time.sleep(1)
    assert f"cmnd/f2-{MAC_B}/sensor-mode/J1/relay" not in a.received
    a.client.publish(own, body, qos=1).wait_for_publish(5)
    # The broker answers a forbidden publish by dropping it (and may drop the connection too).
    a.client.publish(other, body, qos=1)
    wait_for(lambda: bool(_raw_records_for(raw, own, 0.5)), 30, what="A's own message in f2.raw")
    assert _raw_records_for(raw, other, 3.0) == [], "a message A wrote to B's topic reached Kafka"
    a.close()
    raw.close()


def test_connections_without_a_valid_certificate_are_refused(migrated, ca, stack, tmp_path) -> None:
    # No certificate at all.
    assert not Device(migrated, None, None).connect()
    # A certificate from another CA.
    rogue_ca, rogue_key = _mint(None, None, "Rogue CA")
    cert, key = _mint(rogue_ca, rogue_key, MAC_A)
    assert not Device(migrated, *_write_pair(tmp_path, "rogue", cert, key)).connect()
    # An expired certificate from the right CA.
    expired = ca.issue_device(
        MAC_A, not_before=datetime.now(UTC) - timedelta(days=10), not_after=datetime.now(UTC) - timedelta(days=1)
    )
    assert not Device(migrated, expired.cert_path, expired.key_path).connect()
    # Plaintext MQTT to the TLS port.
    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    got: list[object] = []
    plain.on_connect = lambda c, u, f, rc, p: got.append(rc)
    try:
        plain.connect(migrated.mqtt_host, migrated.mqtt_tls_port, keepalive=5)
        plain.loop_start()
        time.sleep(2)
        plain.loop_stop()
    except OSError:
        pass
    assert not any(not getattr(rc, "is_failure", True) for rc in got), "plaintext was accepted on the TLS port"


def test_a_revoked_certificate_is_refused_after_the_broker_reloads(reload_stack: Stack) -> None:
    # On a stack of its own: the reload (SIGHUP) can crash Mosquitto 2.0.11 later (tests/conftest.py).
    stack, migrated, ca = reload_stack, reload_stack.env_settings(), reload_stack.mosquitto.pki()
    mac = "aabbccddee03"
    victim = ca.issue_device(mac, days=30)
    keeper = ca.issue_device("aabbccddee04", days=30)
    d = Device(migrated, victim.cert_path, victim.key_path)
    assert d.connect()
    d.close()
    assert ca.revoke(mac), "nothing was revoked"
    stack.mosquitto.reload()
    time.sleep(1.5)
    assert not Device(migrated, victim.cert_path, victim.key_path).connect(), "a revoked certificate was accepted"
    k = Device(migrated, keeper.cert_path, keeper.key_path)
    assert k.connect(), "an unrevoked certificate must still be accepted"
    k.close()


@pytest.mark.parametrize("cn", ["+", "#", "aabbccddee0+"])
def test_a_certificate_whose_cn_holds_wildcards_gets_no_access(cn, migrated, ca, pipeline, tmp_path) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca.ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.ca_key_path.read_bytes(), None)
    cert, key = _mint(ca_cert, ca_key, cn)  # type: ignore[arg-type]
    raw = TopicReader(migrated, topics.RAW)
    d = Device(migrated, *_write_pair(tmp_path, "wild", cert, key))
    if d.connect():
        d.client.subscribe([("cmnd/#", 1)])
        time.sleep(0.5)
        topic = f"tele/f2-{MAC_A}/sensor-mode/J1/sensor-1"
        d.client.publish(topic, b'{"timestamp": "2026-01-01 00:00:00", "data": "00"}', qos=1)
        publish(migrated, [(f"cmnd/f2-{MAC_A}/sensor-mode/J1/relay", b"x")])
        time.sleep(2)
        assert d.received == []
        assert not [v for _, v, h in raw.poll(2) if v and b"2026-01-01 00:00:00" in v]
        d.close()
    raw.close()


def test_kafka_refuses_clients_without_or_with_wrong_credentials(migrated) -> None:
    base = {"bootstrap.servers": migrated.kafka_bootstrap_servers, "group.id": "intruder", "socket.timeout.ms": 3000}
    for extra in (
        {"security.protocol": "PLAINTEXT"},
        {**{k: v for k, v in migrated.kafka_config().items() if k != "bootstrap.servers"}, "sasl.password": "wrong"},
    ):
        consumer = Consumer({**base, **extra})
        with pytest.raises(KafkaException):
            consumer.list_topics(timeout=5)
        consumer.close()
    # The real credentials work (control).
    ok = Consumer({**migrated.kafka_config(), "group.id": "control"})
    assert topics.RAW in ok.list_topics(timeout=10).topics
    ok.close()


def test_redis_has_no_default_user_and_the_processor_user_is_confined(migrated, stack) -> None:
    anonymous = redis.Redis(host=migrated.mqtt_host, port=stack.settings.redis_port, socket_timeout=3)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    processor = redis.Redis.from_url(migrated.redis_url, socket_timeout=3)
    assert processor.ping()
    processor.set("f2:topology:v0:test", "x", ex=5)
    with pytest.raises(redis.exceptions.NoPermissionError):
        processor.set("other:key", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        processor.flushall()


def test_database_roles_have_least_privilege(migrated, stack_env) -> None:
    sink_dsn, processor_dsn = stack_env["F2_SINK_TIMESERIES_DSN"], stack_env["F2_PROCESSOR_REGISTRY_DSN"]
    with psycopg.connect(sink_dsn, autocommit=True) as sink:
        sink.execute("SELECT count(*) FROM decoded_data")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sink.execute("DELETE FROM decoded_data WHERE false")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sink.execute('SELECT * FROM "VtDevice".devices LIMIT 1')
    with psycopg.connect(processor_dsn, autocommit=True) as proc:
        assert proc.execute('SELECT count(*) FROM "VtDevice".devices').fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            proc.execute('UPDATE "VtDevice".datapoints SET decimals = decimals WHERE false')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            proc.execute('INSERT INTO "VtDevice".devicetypes (typename) VALUES (%s)', ("intruder",))
    wrong = psycopg.conninfo.make_conninfo(sink_dsn, password="wrong")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(wrong, connect_timeout=5)


def test_oversized_payloads_are_rejected_without_disturbing_the_pipeline(migrated, pipeline) -> None:
    dead = TopicReader(migrated, topics.DEADLETTER)
    topic = "tele/f2-aabbccddee01/sensor-mode/J1/sensor-1"
    # 2 MB: the broker refuses it (message_size_limit); the publishing client is disconnected.
    big = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    big.username_pw_set(migrated.mqtt_username, migrated.mqtt_password)
    big.connect(migrated.mqtt_host, migrated.mqtt_port)
    big.loop_start()
    big.publish(topic, b"x" * (2 * 1024 * 1024), qos=1)
    time.sleep(2)
    big.loop_stop()
    # 100 kB: accepted by the broker, refused by the processor as payload-too-large.
    medium = json.dumps({"timestamp": "2026-02-01 00:00:00", "data": "00" * 50_000}).encode()
    publish(migrated, [(topic, medium)])
    wait_for(
        lambda: any(h.get(topics.H_REASON) == "payload-too-large" and v == medium for _, v, h in dead.poll(0.5)),
        30,
        what="the payload-too-large dead letter",
    )
    # The pipeline still decodes a normal frame afterwards.
    ts = datetime.now(UTC).replace(tzinfo=None)
    publish(
        migrated,
        [
            (
                topic,
                json.dumps(
                    {"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S.%f"), "data": "01 03 06 09 30 11 9E 02 64 05 B1"}
                ).encode(),
            )
        ],
    )

    def stored() -> bool:
        with psycopg.connect(migrated.timeseries_dsn) as db:
            return (
                db.execute(
                    'SELECT count(*) FROM decoded_data WHERE "timestamp" = %s', (ts.replace(tzinfo=UTC),)
                ).fetchone()[0]
                == 3
            )

    wait_for(stored, 30, what="a normal frame after the oversized ones")
    assert all(pipeline.alive().values())
    assert not any(v is not None and len(v) > 1024 * 1024 for _, v, _ in dead.records)
    dead.close()


def test_reader_credentials_never_reach_the_database_dead_letters_or_logs(migrated, stack, pipeline) -> None:
    secret = f"QR-SECRET-{uuid.uuid4().hex}"
    dead = TopicReader(migrated, topics.DEADLETTER)
    ts = "2026-02-02 02:02:02.000000"
    publish(
        migrated,
        [
            (
                "stat/f2-aabbccddee01/access-control-mode/J1/reader-1",
                json.dumps({"timestamp": ts, "credential": secret}).encode(),
            ),
            # A malformed reader topic is dead-lettered: its payload must arrive redacted.
            (
                "stat/f2-aabbccddee01/access-control-mode/J1/reader-01",
                json.dumps({"timestamp": ts, "credential": secret}).encode(),
            ),
            ("stat/f2-aabbccddee01/access-control-mode/J1/reader-2", f"not json {secret}".encode()),
        ],
    )
    wait_for(
        lambda: any(h.get(topics.H_MQTT_TOPIC, "").endswith("reader-01") for _, _, h in dead.poll(0.5)),
        30,
        what="the malformed reader topic's dead letter",
    )
    dead.poll(3)
    assert dead.records, "expected the dead letter of the malformed reader topic"
    for key, value, headers in dead.records:
        blob = (key or b"") + (value or b"") + json.dumps(headers).encode()
        assert secret.encode() not in blob
    with psycopg.connect(migrated.timeseries_dsn) as db:
        assert (
            db.execute(
                'SELECT count(*) FROM decoded_data WHERE "timestamp" = %s', (datetime(2026, 2, 2, 2, 2, 2, tzinfo=UTC),)
            ).fetchone()[0]
            == 0
        )
    logs = [*stack.layout.logs.glob("*.log"), *(d.log_path for d in pipeline.daemons)]
    for log in logs:
        assert secret not in log.read_text(errors="replace"), f"the credential appears in {log}"
    dead.close()
