"""The Compose deployment's enrollment service, run for real: `f2 certs serve` on the PKI bootstrap.py writes,
against the test stack's registry; its Compose health check as written; a real Prometheus scraping it over
HTTPS with the f2-enroll job of prometheus.yml and the platform CA, finding the certificate-expiry metric."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from f2_platform.stack.ports import free_port
from tests.deploy.prometheus_runner import Prometheus
from tests.deploy.support import COMPOSE_FILE, PROMETHEUS, VENV_BIN
from tests.deploy.test_compose import load_bootstrap
from tests.deploy.test_compose_services_live import stop, wait_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def enroll(migrated, stack_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    from tests.pipeline import env_without_proxy

    workdir = tmp_path_factory.mktemp("enroll")
    out = workdir / "secrets"
    load_bootstrap().write_all(out, [str(VENV_BIN / "f2")], [])
    port = free_port()
    env = env_without_proxy(stack_env) | {"F2_ENROLL_PORT": str(port), "F2_REGISTRY_DSN": migrated.registry_dsn}
    log = workdir / "enroll.log"
    command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["enroll"]["command"]
    pki = command[command.index("--pki-dir") + 1]
    command = [str(VENV_BIN / "f2"), *[str(out / "pki") if arg == pki else arg for arg in command[1:]]]
    with open(log, "wb") as handle:
        proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, log, timeout=30)
        yield port, out / "pki"
    finally:
        stop(proc)


def test_enroll_health_check_passes(enroll: tuple[int, Path]) -> None:
    port, pki = enroll
    service = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["enroll"]
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    command = [VENV_BIN / "python", *test[2:]]
    command = [str(arg).replace("/var/lib/f2/pki", str(pki)).replace(":18443/", f":{port}/") for arg in command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_prometheus_scrapes_certificate_expiry_over_https(
    enroll: tuple[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: install Debian's prometheus package (make provision)")
    port, pki = enroll
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus-enroll"),
        {"f2-enroll": [f"127.0.0.1:{port}"]},
        ca_file=pki / "ca.crt",
    )
    try:
        server.start()
        server.wait(lambda: server.target_health().get("f2-enroll") == ["up"], 60, "f2-enroll up")
        kinds = server.wait(
            lambda: (
                {
                    r["metric"]["kind"]
                    for r in server.query('f2_certificate_expiry_timestamp_seconds{job="f2-enroll", daemon="enroll"}')
                }
                >= {"ca", "server", "crl"}
                or None
            ),
            30,
            "certificate expiry series",
        )
        assert kinds
    finally:
        server.stop()
