"""The bridge's MQTT client over TLS against the stack's Mosquitto (its device listener: TLS 1.2+, a client
certificate from the platform CA required, the certificate's CN the username its ACL applies to): a verified
connection that receives what is published, and each refusal ending with an error that names what to fix: a
broker certificate from another CA, no client certificate, a revoked client certificate, a wrong password (the
bridge itself counts the refusal and exits with EXIT_CONFIG)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from f2_platform.stack.manager import Stack
from f2_platform.stack.services import MQTT_INTERNAL_USER
from streaming.bridge import EXIT_CONFIG
from streaming.errors import MqttRefusedError
from streaming.mqtt.session import MqttSession, SessionOptions, State
from streaming.mqtt.tls import client_context
from streaming.mqtt.wire import Publish
from streaming.settings import ConnectionSettings
from tests.openssl_ca import OpensslCA, Pair, issue_client
from tests.pipeline import env_without_proxy
from tests.realtime import publish

pytestmark = [pytest.mark.integration]

TOPIC = "tele/f2-00000000fee2/c1/p1/sensor-1"


def stack_ca(stack: Stack) -> Pair:
    return Pair(stack.layout.pki_dir / "ca.crt", stack.layout.pki_dir / "ca.key")


@pytest.fixture(scope="module")
def internal_cert(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """A client certificate of the stack's internal account (its ACL: readwrite #), as an operator issues the
    bridge's."""
    return issue_client(stack_ca(stack), MQTT_INTERNAL_USER, tmp_path_factory.mktemp("mqtt-client"))


def tls_options(stack: Stack, client_id: str, ca: Path, cert: Pair | None) -> SessionOptions:
    return SessionOptions(
        host="127.0.0.1",
        port=stack.settings.mqtt_tls_port,
        client_id=client_id,
        username=None,
        password=None,
        keepalive_s=30,
        session_expiry_s=30,
        receive_maximum=100,
        topic_filters=("tele/f2-00000000fee2/#",),
        tls=client_context(ca, cert.cert if cert else None, cert.key if cert else None),
        maximum_packet_size=327_680,
    )


def refusal(session: MqttSession, timeout: float = 10.0) -> MqttRefusedError:
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            session.poll(0.05)
            session.flush()
    except MqttRefusedError as exc:
        assert session.state is State.CLOSED
        return exc
    finally:
        session.close()
    raise AssertionError(f"no refusal within {timeout} s (state {session.state.value})")


def test_the_session_over_tls_with_a_client_certificate_receives_and_acknowledges(
    stack: Stack, migrated: ConnectionSettings, internal_cert: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="f2.mqtt")
    session = MqttSession(tls_options(stack, f"test-tls-{uuid.uuid4().hex[:8]}", stack_ca(stack).cert, internal_cert))
    try:
        deadline = time.monotonic() + 10
        while not any("subscribed to" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            session.poll(0.05)
            session.flush()
        payloads = [f"tls-{n}".encode() for n in range(50)]
        publish(migrated, [(TOPIC, p) for p in payloads])
        got: list[Publish] = []
        deadline = time.monotonic() + 10
        while len(got) < len(payloads):
            assert time.monotonic() < deadline, len(got)
            got += session.poll(0.05)
        assert [p.payload for p in got] == payloads
        for p in got:
            session.ack(session.connection, p.packet_id)
        session.flush()
        assert session.unsent == 0
    finally:
        session.close()


def test_a_broker_certificate_from_another_ca_is_refused(stack: Stack, internal_cert: Pair, tmp_path: Path) -> None:
    other = OpensslCA(tmp_path / "other", name="Other")
    session = MqttSession(tls_options(stack, "test-tls-other-ca", other.root.cert, internal_cert))
    exc = refusal(session)
    assert exc.reason == "tls-server-certificate"
    assert "F2_CA_CERT" in str(exc) and "failed verification (self-signed certificate in certificate chain)" in str(exc)


def test_no_client_certificate_on_the_device_listener_is_refused(stack: Stack) -> None:
    session = MqttSession(tls_options(stack, "test-tls-no-cert", stack_ca(stack).cert, None))
    exc = refusal(session)
    assert exc.reason == "tls-client-certificate", exc
    assert "F2_MQTT_TLS_CERT" in str(exc)


def test_a_revoked_client_certificate_is_refused(reload_stack: Stack) -> None:
    # Mosquitto 2.0 grants every subscription and applies its ACL file only on delivery, so an account
    # without read rights is never refused (it receives nothing); a revoked certificate is refused at once.
    # On a stack of its own: the reload (SIGHUP) can crash Mosquitto 2.0.11 later (tests/conftest.py).
    stack = reload_stack
    mac = "00000000fee3"
    ca = stack.mosquitto.pki()
    issued = ca.issue_device(mac)
    assert issued.key_path is not None
    ca.revoke(mac)
    stack.mosquitto.reload()  # the broker rereads the CRL
    time.sleep(1.0)
    session = MqttSession(
        tls_options(stack, "test-tls-revoked", stack_ca(stack).cert, Pair(issued.cert_path, issued.key_path))
    )
    exc = refusal(session)
    assert exc.reason == "tls-client-certificate", exc
    assert "CERTIFICATE_REVOKED" in str(exc) and "F2_MQTT_TLS_CERT" in str(exc)


def test_the_bridge_counts_a_refusal_and_exits_with_exit_config(stack_env: dict[str, str], tmp_path: Path) -> None:
    env = env_without_proxy(stack_env) | {
        "F2_MQTT_PASSWORD": "not-the-password",
        "F2_BRIDGE_CLIENT_ID": f"test-refused-bridge-{uuid.uuid4().hex[:6]}",
        "F2_BRIDGE_METRICS_PORT": "0",
    }
    code = (
        "import sys\n"
        "from streaming import bridge\n"
        "from streaming.runtime.metrics import REGISTRY\n"
        "status = bridge.main()\n"
        "refused = sum(s.value for m in REGISTRY.collect() if m.name == 'f2_mqtt_refused' for s in m.samples"
        " if s.name == 'f2_mqtt_refused_total')\n"
        "print('REFUSED', refused, flush=True)\n"
        "sys.exit(status)\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_CONFIG, done.stderr[-3000:]
    assert time.monotonic() - started < 30
    assert "REFUSED 1.0" in done.stdout, done.stdout
    assert "F2_MQTT_PASSWORD" in done.stderr and "cannot run" in done.stderr, done.stderr[-3000:]
