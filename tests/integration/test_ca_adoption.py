"""Adopting another deployment's CA, on real servers: its devices keep their certificates.

A CA is made outside the platform with `openssl` (a root and an intermediate that signs devices), and issues a
controller's certificate before the platform knows it. `f2 certs import-ca` adopts the intermediate with its
chain and `f2 certs import-issued` records the certificate, in the pki of a local stack whose Mosquitto is
started afterwards by the stack's own code (so its `cafile` is whatever `f2 stack up` would give it). The device
connects over mTLS with the certificate and the trust anchor it always had (the deployment's root), publishes a
frame that reaches Kafka through a bridge and is decoded by the session's pipeline; the enrollment service
issues a new controller's certificate from the adopted CA; after `f2 certs revoke` the broker refuses the old
device and still accepts the new one.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from cryptography import x509

from certs.enroll_client import enroll
from f2_platform.registry.sample import TEMPLATES, claiming_code
from f2_platform.registry.seed import seed_fleet
from f2_platform.settings import StackSettings
from f2_platform.stack.daemons import DaemonProcess, pipeline_daemon
from f2_platform.stack.hermetic import hermetic_stack_settings, make_state_dir
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.services import MQTT_INTERNAL_USER, Mosquitto
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.openssl_ca import OPENSSL, OpensslCA
from tests.pipeline import env_without_proxy
from tests.realtime import F2, TopicReader, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(OPENSSL is None, reason="openssl is not on PATH"),
]

# A sample controller: its J1 sensor-1 is "Living Room Env" (docs/domain.md §9), so its frames decode.
MAC = "aabbccddee01"
TOPIC = f"tele/f2-{MAC}/sensor-mode/J1/sensor-1"
FRAME = "01 03 06 09 30 11 9E 02 64 05 B1"  # Temperature 23.52, Humidity 45.1, CO2 612
# A controller this test registers, to enroll after the adoption.
NEW_MAC = "a0c0ad00f001"


@dataclass
class AdoptedStack:
    """A second local stack's broker (and enrollment service, and a bridge into the session's Kafka) whose pki
    holds the adopted CA."""

    settings: StackSettings
    layout: StackLayout
    deployment: OpensslCA
    device_cert: Path
    device_key: Path
    cli_env: dict[str, str]
    outputs: dict[str, str]

    def f2(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([F2, *args], env=self.cli_env, capture_output=True, text=True, timeout=120, check=False)


def _device_context(ca_file: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert), str(key))
    return context


class Device:
    """An MQTT v5 client on the device (mTLS) listener."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self.port = port
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.tls_set_context(context)
        self.client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure else self.connected.set()

    def connect(self) -> bool:
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=10)
        except (OSError, ssl.SSLError):
            return False
        self.client.loop_start()
        ok = self.connected.wait(5)
        time.sleep(0.5)  # a refused certificate may surface on the first read only
        return ok and self.client.is_connected()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def adopted(
    migrated: ConnectionSettings, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdoptedStack]:
    state = make_state_dir("f2-test-adopt-")
    settings = hermetic_stack_settings(state)
    layout = StackLayout(settings)
    layout.create()
    deployment = OpensslCA(tmp_path_factory.mktemp("deployment-ca"), intermediate=True)
    device = deployment.issue_device(MAC)  # issued before the platform existed
    assert deployment.intermediate is not None
    cli_env = {
        **env_without_proxy(stack_env),
        "F2_STATE_DIR": str(state),
        "F2_STACK_MQTT_PORT": str(settings.mqtt_port),
        "F2_STACK_MQTT_TLS_PORT": str(settings.mqtt_tls_port),
        "F2_STACK_ENROLL_PORT": str(settings.enroll_port),
        "F2_ENROLL_PORT": str(settings.enroll_port),
    }
    adopted = AdoptedStack(settings, layout, deployment, device.cert, device.key, cli_env, {})
    broker = Mosquitto(layout)
    daemons: list[DaemonProcess] = []
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg, reg.transaction():
        seed_fleet(
            reg, [("Adoption Test Controller", NEW_MAC)], [], [t for t in TEMPLATES if t.name == "F2 Controller"]
        )
    try:
        imported = adopted.f2(
            "certs", "import-ca", "--cert", str(deployment.intermediate.cert), "--key",
            str(deployment.intermediate.key), "--chain", str(deployment.root.cert),
        )  # fmt: skip
        adopted.outputs["import-ca"] = imported.stdout + imported.stderr
        recorded = adopted.f2("certs", "import-issued", str(device.cert))
        adopted.outputs["import-issued"] = recorded.stdout + recorded.stderr
        assert imported.returncode == 0 and recorded.returncode == 0, adopted.outputs
        # The stack's broker, prepared by the stack's own code: it finds the adopted CA and keeps it.
        broker.start()
        daemon_env = {
            **cli_env,
            "F2_MQTT_HOST": settings.host,
            "F2_MQTT_PORT": str(settings.mqtt_port),
            "F2_MQTT_USERNAME": MQTT_INTERNAL_USER,
            "F2_MQTT_PASSWORD": broker.password,
            "F2_MQTT_TLS_PORT": str(settings.mqtt_tls_port),
            "F2_CA_CERT": str(layout.pki_dir / "ca.crt"),
        }
        logs = tmp_path_factory.mktemp("adopt-daemons")
        daemons = [
            pipeline_daemon("bridge", 0, daemon_env, logs / "bridge.log", instance=f"adopt-{uuid.uuid4().hex[:6]}"),
            pipeline_daemon("enroll", 0, daemon_env, logs / "enroll.log", instance="adopt"),
        ]
        for daemon in daemons:
            daemon.start()
        for daemon in daemons:
            daemon.wait_healthy(60)
        yield adopted
    finally:
        for daemon in daemons:
            daemon.stop()
        if broker.running():
            broker.stop()
        with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
            reg.execute('DELETE FROM "VtDevice".f2_enrollments WHERE mac = %s', (NEW_MAC,))
            reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = %s', (NEW_MAC,))
        shutil.rmtree(state, ignore_errors=True)


def test_import_says_what_it_adopted_and_the_stack_broker_trusts_it(adopted: AdoptedStack) -> None:
    out = adopted.outputs["import-ca"]
    assert "adopted CA CN=Deployment Device CA" in out and "chain: CN=Deployment Root CA" in out, out
    assert "WARNING: no --crl given" in out
    assert f"({MAC}) from {adopted.device_cert}" in adopted.outputs["import-issued"]
    pki = adopted.layout.pki_dir
    conf = (adopted.layout.service_dir("mosquitto") / "mosquitto.conf").read_text()
    assert f"cafile {pki / 'ca.crt'}" in conf and f"crlfile {pki / 'crl.pem'}" in conf
    bundle = x509.load_pem_x509_certificates((pki / "ca.crt").read_bytes())
    assert [c.subject.rfc4514_string() for c in bundle] == ["CN=Deployment Device CA", "CN=Deployment Root CA"]
    listing = adopted.f2("certs", "list")
    assert MAC in listing.stdout and "device (imported)" in listing.stdout, listing.stdout


def test_a_device_keeps_its_certificate_and_its_readings_reach_the_pipeline(
    adopted: AdoptedStack, migrated: ConnectionSettings, pipeline
) -> None:
    raw = TopicReader(migrated, topics.RAW)
    # The device's own trust anchor is the deployment's root: the broker's certificate chains to it.
    device = Device(
        adopted.settings.mqtt_tls_port,
        _device_context(adopted.deployment.root.cert, adopted.device_cert, adopted.device_key),
    )
    assert device.connect(), "the certificate issued before the adoption must be accepted"
    stamp = datetime.now(UTC).replace(microsecond=0)
    body = json.dumps({"timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S.%f"), "data": FRAME}).encode()
    device.client.publish(TOPIC, body, qos=1).wait_for_publish(10)
    device.close()

    def in_kafka() -> bool:
        return any(v == body and h.get(topics.H_MQTT_TOPIC) == TOPIC for _, v, h in raw.poll(0.5))

    wait_for(in_kafka, 30, what="the adopted device's message in f2.raw")
    raw.close()

    def stored() -> dict[int, float]:
        with psycopg.connect(migrated.timeseries_dsn) as conn:
            rows = conn.execute(
                'SELECT d.datapoint_id, d.value FROM decoded_data d WHERE d."timestamp" = %s AND d.device_id = '
                '(SELECT p.deviceid FROM "VtDevice".pins p JOIN "VtDevice".connectors c ON c.connectorid = '
                'p.connectorid JOIN "VtDevice".devices ctl ON ctl.deviceid = c.controllerid '
                "WHERE ctl.macaddress = %s AND c.connectornumber = 1 AND p.position = 1)",
                (stamp, MAC),
            ).fetchall()
        return {int(dp): float(v) for dp, v in rows}

    wait_for(lambda: len(stored()) == 3, 60, what="the adopted device's readings in decoded_data")
    assert sorted(stored().values()) == [23.52, 45.1, 612.0]


def test_enrollment_issues_from_the_adopted_ca_and_revocation_refuses_the_old_device(
    adopted: AdoptedStack, tmp_path: Path
) -> None:
    pki = adopted.layout.pki_dir
    url = f"https://127.0.0.1:{adopted.settings.enroll_port}"
    cert_path, key_path = enroll(url, NEW_MAC, claiming_code(NEW_MAC), pki / "ca.crt", tmp_path / "new")
    issued = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert issued.issuer.rfc4514_string() == "CN=Deployment Device CA"
    check = subprocess.run(
        [str(OPENSSL), "verify", "-CAfile", str(adopted.deployment.root.cert), "-untrusted",
         str(adopted.deployment.issuing.cert), str(cert_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    port = adopted.settings.mqtt_tls_port
    root = adopted.deployment.root.cert
    new_device = Device(port, _device_context(root, cert_path, key_path))
    assert new_device.connect(), "a certificate the adopted CA issued through enrollment must be accepted"
    new_device.close()

    revoked = adopted.f2("certs", "revoke", MAC)
    assert revoked.returncode == 0 and f"({MAC})" in revoked.stdout, revoked.stdout + revoked.stderr
    serial = format(x509.load_pem_x509_certificate(adopted.device_cert.read_bytes()).serial_number, "x")
    assert f"revoked {serial}" in revoked.stdout
    time.sleep(1.5)  # the CLI made the broker reload its CRL (SIGHUP)
    old = Device(port, _device_context(root, adopted.device_cert, adopted.device_key))
    assert not old.connect(), "the revoked certificate was accepted"
    still = Device(port, _device_context(root, cert_path, key_path))
    assert still.connect(), "a certificate that was not revoked must still be accepted"
    still.close()
