"""Kafka with SASL_SSL on its client listener (F2_STACK_KAFKA_TLS, as Kubernetes runs it): the broker shows the
stack PKI's broker certificate, clients trust it through F2_KAFKA_SSL_CA_LOCATION, a client in clear or one that
does not trust the CA gets nowhere, and the pipeline's daemons run over it with nothing lost."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography import x509

from f2_platform.stack.manager import Stack
from streaming.settings import ConnectionSettings
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import F2, simulate, wait_reconciled

pytestmark = [pytest.mark.integration]


def test_the_stack_exports_sasl_ssl_and_its_ca(tls_stack: Stack, tls_env: dict[str, str]) -> None:
    result = subprocess.run([F2, "stack", "env"], env=tls_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "export F2_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in result.stdout
    ca = tls_stack.layout.pki_dir / "ca.crt"
    assert f"export F2_KAFKA_SSL_CA_LOCATION={ca}" in result.stdout
    assert ConnectionSettings(**{"kafka_ssl_ca_location": ca}).kafka_config()["ssl.ca.location"] == str(ca)


def test_the_broker_shows_the_stack_pki_certificate_over_tls(tls_stack: Stack) -> None:
    ca = tls_stack.layout.pki_dir / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca))  # verifies the chain and the name 127.0.0.1
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    port = tls_stack.kafka.port
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    shown = x509.load_der_x509_certificate(der)
    server = x509.load_pem_x509_certificate(tls_stack.mosquitto.pki().server_cert_path.read_bytes())
    assert shown == server, "Kafka shows another certificate than the PKI's broker certificate"
    keystore = tls_stack.kafka.nodes[0].dir / "keystore.pem"
    assert keystore.stat().st_mode & 0o777 == 0o600


def _lists_topics(config: dict[str, str]) -> bool:
    admin = AdminClient({**config, "socket.timeout.ms": 3000, "log_level": 0})
    try:
        admin.list_topics(timeout=8)
        return True
    except KafkaException:
        return False


def test_clients_in_clear_or_without_the_ca_get_nowhere(tls_stack: Stack, tls_migrated: ConnectionSettings) -> None:
    config = tls_migrated.kafka_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert _lists_topics(config)
    assert not _lists_topics({**config, "security.protocol": "SASL_PLAINTEXT"}), "the listener speaks in clear"
    untrusting = {k: v for k, v in config.items() if k != "ssl.ca.location"}
    assert not _lists_topics(untrusting), "a client that does not trust the stack's CA connected"


@pytest.fixture(scope="module")
def tls_pipeline(
    tls_migrated: ConnectionSettings, tls_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    p = Pipeline(env_without_proxy(tls_env), tmp_path_factory.mktemp("tls-daemons"))
    p.start()
    try:
        yield p
    finally:
        p.stop()


def test_the_pipeline_over_sasl_ssl_loses_nothing(
    tls_migrated: ConnectionSettings, tls_env: dict[str, str], tls_pipeline: Pipeline, tmp_path: Path
) -> None:
    ledger = tmp_path / f"ledger-{uuid.uuid4().hex[:6]}.jsonl"
    proc = simulate(
        {**env_without_proxy(tls_env), "F2_SIMULATOR_TRANSPORT": "internal"},
        *("--controllers", "5", "--interval", "0.1", "--count", "2000", "--ledger", str(ledger)),
        "--seed",
        str(int(time.time())),
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and b"2000 messages acknowledged" in out, out.decode()[-2000:]
    report = wait_reconciled(ledger, tls_migrated.timeseries_dsn, 120)
    assert report.exact, (report.expected, report.stored, report.missing[:3], report.unexpected[:3])
    assert all(tls_pipeline.alive().values()), tls_pipeline.alive()
