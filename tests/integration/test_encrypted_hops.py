"""Every hop encrypted: devices publish over mTLS (certificates from the enrollment service), the bridge reads
Mosquitto over TLS with its own client certificate (issued with `f2 certs service`; F2_MQTT_TLS, F2_CA_CERT,
F2_MQTT_TLS_CERT/KEY), and bridge, processor and sink talk to Kafka over SASL_SSL (F2_KAFKA_SSL_CA_LOCATION), as
in Kubernetes. The run is reconciled exactly against the simulator's ledger."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from f2_platform.stack.manager import Stack
from f2_platform.stack.services import MQTT_INTERNAL_USER
from streaming.settings import ConnectionSettings
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import F2, simulate, wait_for, wait_reconciled

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def encrypted_env(
    tls_stack: Stack, tls_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    pki = tls_stack.layout.pki_dir
    # The bridge's certificate, issued as an operator does: CN = the stack's internal account, whose ACL reads
    # every topic.
    out = tmp_path_factory.mktemp("bridge") / "tls"
    issued = subprocess.run(
        [F2, "certs", "service", MQTT_INTERNAL_USER, "--out", str(out)],
        env=env_without_proxy(tls_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert issued.returncode == 0, issued.stderr
    env = env_without_proxy(tls_env) | {
        "F2_MQTT_TLS": "true",
        "F2_MQTT_TLS_CERT": str(out / f"{MQTT_INTERNAL_USER}.crt"),
        "F2_MQTT_TLS_KEY": str(out / f"{MQTT_INTERNAL_USER}.key"),
    }
    assert env["F2_CA_CERT"] == str(pki / "ca.crt") and env["F2_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    return env


@pytest.fixture(scope="module")
def encrypted_pipeline(
    tls_migrated: ConnectionSettings, encrypted_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    p = Pipeline(encrypted_env, tmp_path_factory.mktemp("encrypted-daemons"))
    p.start()
    try:
        yield p
    finally:
        p.stop()


def test_the_pipeline_with_mqtt_tls_and_kafka_sasl_ssl_loses_nothing(
    tls_stack: Stack, tls_migrated: ConnectionSettings, encrypted_env: dict[str, str], encrypted_pipeline: Pipeline,
    tmp_path: Path,
) -> None:  # fmt: skip
    bridge_log = encrypted_pipeline.get("bridge-0").log_path
    wait_for(lambda: "subscribed to" in bridge_log.read_text(), 30, what="the bridge's subscription")
    text = bridge_log.read_text()
    assert f"connected to MQTT 127.0.0.1:{tls_stack.settings.mqtt_tls_port}" in text, text[-2000:]
    ledger = tmp_path / f"ledger-{uuid.uuid4().hex[:6]}.jsonl"
    proc = simulate(
        encrypted_env,  # F2_SIMULATOR_TRANSPORT unset: the devices' mTLS listener
        *("--controllers", "5", "--interval", "0.1", "--count", "2000", "--ledger", str(ledger)),
        "--seed",
        str(int(time.time())),
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and b"2000 messages acknowledged" in out, out.decode()[-2000:]
    report = wait_reconciled(ledger, tls_migrated.timeseries_dsn, 120)
    assert report.exact, (report.expected, report.stored, report.missing[:3], report.unexpected[:3])
    assert all(encrypted_pipeline.alive().values()), encrypted_pipeline.alive()
