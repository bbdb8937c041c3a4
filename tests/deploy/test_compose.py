"""deploy/compose/compose.yaml: parsed and resolved by `docker-compose config` (PyPI docker-compose in its own
venv, no container engine needed), then checked: health checks, non-root users, published ports, secrets
only from files, the internal network, and settings names from docs/contracts.md."""

from __future__ import annotations

import importlib.util
import os
import re
import stat
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    COMPOSE_FILE,
    DOCKER_COMPOSE,
    PROVISION_HINT,
    VENV_BIN,
    setting_names,
    setting_of,
)

# Container ports that may be published, and what they are.
ALLOWED_PUBLISHED = {
    ("mosquitto", 8883): "MQTT over mTLS, the devices' port",
    # Devices enroll (POST /v1/enroll) before they have a certificate, from wherever they are, so this
    # port is published like 8883 (on every address, TLS only); it authenticates them by claiming code.
    ("enroll", 18443): "device enrollment over HTTPS, the devices' other port",
    ("dagster-webserver", 3000): "Dagster UI",
    ("grafana", 3000): "Grafana UI",
    ("prometheus", 9090): "Prometheus UI",
}
UI_SERVICES = {"dagster-webserver", "grafana", "prometheus"}
DEVICE_SERVICES = {"mosquitto", "enroll"}
PLATFORM_IMAGE_SERVICES = {
    "f2-init",
    "enroll",
    "bridge",
    "processor",
    "sink",
    "dagster-code",
    "dagster-webserver",
    "dagster-daemon",
}
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|DSN|REDIS_URL|PRIVATE|CREDENTIAL|JAAS", re.IGNORECASE)


def compose_env() -> dict[str, str]:
    # Only the defaults written in the files: nothing from the developer's shell leaks into the check.
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}


@cache
def resolved() -> dict[str, Any]:
    if not DOCKER_COMPOSE.exists():
        pytest.fail(f"{DOCKER_COMPOSE} is missing: {PROVISION_HINT}")
    result = subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=compose_env(),
        cwd=COMPOSE_FILE.parent,
        check=False,
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def services() -> dict[str, dict[str, Any]]:
    return resolved()["services"]


def is_job(service: dict[str, Any]) -> bool:
    labels = service.get("labels") or {}
    return labels.get("f2.role") == "job"


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def secret_names(service: dict[str, Any]) -> set[str]:
    return {s["source"] if isinstance(s, dict) else s for s in service.get("secrets") or []}


def test_docker_compose_config_validates_the_file() -> None:
    result = subprocess.run(
        [str(DOCKER_COMPOSE), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=compose_env(),
        cwd=COMPOSE_FILE.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {
        "mosquitto",
        "kafka",
        "timescaledb",
        "redis",
        "bridge",
        "processor",
        "sink",
        "enroll",
        "dagster-webserver",
        "dagster-daemon",
        "dagster-code",
        "prometheus",
        "grafana",
    } <= set(services())


def test_every_service_has_a_health_check_except_one_shot_jobs() -> None:
    for name, service in services().items():
        if is_job(service):
            assert service.get("restart") == "no", f"{name}: a job must not be restarted"
            dependants = [
                other
                for other in services().values()
                if (other.get("depends_on") or {}).get(name, {}).get("condition") == "service_completed_successfully"
            ]
            assert dependants, f"{name}: a job nobody waits for"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_every_service_runs_as_a_non_root_user() -> None:
    for name, service in services().items():
        user = str(service.get("user", ""))
        assert user, f"{name} has no user:"
        uid = user.split(":")[0]
        assert uid not in ("0", "root"), f"{name} runs as root"
        assert uid.isdigit(), f"{name}: use a numeric uid ({user})"


def test_only_the_device_ports_and_the_uis_are_published() -> None:
    published_by = set()
    for name, service in services().items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                target, host_ip = int(port["target"]), port.get("host_ip", "")
            else:
                parts = str(port).split(":")
                target = int(parts[-1].split("/")[0])
                host_ip = parts[0] if len(parts) == 3 else ""
            assert (name, target) in ALLOWED_PUBLISHED, f"{name} publishes {target}, which is not allowed"
            if name in UI_SERVICES:
                assert host_ip == "127.0.0.1", f"{name}: UIs are published on loopback by default, got {port}"
            published_by.add(name)
    assert published_by == {*DEVICE_SERVICES, *UI_SERVICES}
    # The device port is TLS-only: the plaintext internal listener is never published.
    mosquitto_conf = (COMPOSE_FILE.parent / "mosquitto" / "mosquitto.conf").read_text()
    assert re.search(r"^listener 8883\n(?:.*\n)*?require_certificate true", mosquitto_conf, re.MULTILINE)


def test_services_talk_on_an_internal_network() -> None:
    networks = resolved()["networks"]
    assert networks["internal"].get("internal") is True
    for name, service in services().items():
        joined = set(service.get("networks") or {})
        assert "internal" in joined, f"{name} is not on the internal network"
        if not service.get("ports"):
            assert joined == {"internal"}, f"{name} publishes nothing, so it belongs on the internal network only"


def test_no_secret_is_written_inline() -> None:
    declared = resolved()["secrets"]
    for secret in declared.values():
        assert set(secret) == {"file"}, secret
        assert "/deploy/compose/secrets/" in secret["file"], secret["file"]
    for name, service in services().items():
        mounted = secret_names(service)
        assert mounted <= set(declared), f"{name} mounts an undeclared secret"
        for key, value in environment(service).items():
            assert not re.search(r"://[^/\s:@]+:[^@\s]+@", value), f"{name}.{key} holds credentials inline"
            if SECRET_WORDS.search(key) and not key.endswith(("_FILE", "__FILE")):
                pytest.fail(f"{name}.{key} looks like a secret set inline; use {key}_FILE and a Compose secret")
            if key.endswith(("_FILE", "__FILE")):
                assert value.startswith("/run/secrets/"), f"{name}.{key}={value}"
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}.{key}: secret not mounted"
        for check in (service.get("healthcheck") or {}).get("test", [])[1:]:
            assert not re.search(r"(-P|--pass|password=)\s*['\"]?\w", check.replace("$(cat", "")), (
                f"{name}: health check with an inline password"
            )


def test_platform_services_use_the_documented_setting_names() -> None:
    known = setting_names()
    for name in PLATFORM_IMAGE_SERVICES:
        service = services()[name]
        assert service["image"].startswith("f2-platform") or "F2_IMAGE" in COMPOSE_FILE.read_text()
        for key in environment(service):
            if key.startswith("F2_"):
                assert setting_of(key) in known, f"{name}: {key} is no setting of the platform (docs/contracts.md)"


def test_daemons_keep_stable_identities_and_health_ports() -> None:
    bridge, processor, sink = (environment(services()[n]) for n in ("bridge", "processor", "sink"))
    assert bridge["F2_BRIDGE_CLIENT_ID"], "the bridge's MQTT session must survive a container re-creation"
    assert processor["F2_PROCESSOR_INSTANCE_ID"], "the processor's transactional id must be stable"
    for env, service, port in (
        (bridge, "bridge", "9101"),
        (processor, "processor", "9102"),
        (sink, "sink", "9103"),
    ):
        assert env[f"F2_{service.upper()}_METRICS_PORT"] == port
        assert services()[service]["healthcheck"]["test"] == ["CMD", "f2-healthcheck", port]
    prometheus = yaml.safe_load((COMPOSE_FILE.parents[1] / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert targets["f2-bridge"] == ["bridge:9101"]
    assert targets["f2-processor"] == ["processor:9102"]
    assert targets["f2-sink"] == ["sink:9103"]


def test_enrollment_service_serves_the_shared_pki_and_is_scraped_over_https() -> None:
    enroll = services()["enroll"]
    command = enroll["command"]
    assert command[:2] == ["f2", "certs"] and "serve" in command
    assert command[command.index("--host") + 1] == "0.0.0.0", "devices reach it from outside the container"
    pki = command[command.index("--pki-dir") + 1]
    # The PKI bootstrap.py writes, read-write: enrolling appends to the index and takes the PKI's lock.
    # docker-compose 1.29 prints volumes as source:target[:mode]
    (mount,) = [str(v).split(":") for v in enroll["volumes"] if str(v).split(":")[1] == pki]
    assert mount[0].endswith("/deploy/compose/secrets/pki")
    assert mount[2:] in ([], ["rw"])
    assert enroll["read_only"] is True and enroll["cap_drop"] == ["ALL"]
    env = environment(enroll)
    port = env["F2_ENROLL_PORT"]
    assert [p["target"] for p in enroll["ports"]] == [int(port)]
    check = " ".join(enroll["healthcheck"]["test"])
    assert f"https://127.0.0.1:{port}/healthz" in check and f"{pki}/ca.crt" in check
    assert enroll["depends_on"]["f2-init"]["condition"] == "service_completed_successfully"
    # Prometheus scrapes it over HTTPS and verifies it with the platform CA, which Compose mounts into it.
    prometheus = yaml.safe_load((COMPOSE_FILE.parents[1] / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "f2-enroll")
    assert job["scheme"] == "https"
    assert job["static_configs"][0]["targets"] == [f"enroll:{port}"]
    ca_file = job["tls_config"]["ca_file"]
    assert ca_file.startswith("/run/secrets/")
    assert ca_file.removeprefix("/run/secrets/") in secret_names(services()["prometheus"])
    assert resolved()["secrets"]["f2_ca_cert"]["file"].endswith("/secrets/pki/ca.crt")


def test_bootstrap_certificate_names_the_enrollment_service(tmp_path) -> None:
    """Prometheus reaches the service as `enroll`; its certificate (the CA's server.crt) must name it."""
    from cryptography import x509

    out = tmp_path / "secrets"
    bootstrap_secrets(out)
    cert = x509.load_pem_x509_certificate((out / "pki" / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"enroll", "mosquitto", "mqtt.example.com"} <= set(names.get_values_for_type(x509.DNSName))


def load_bootstrap():
    spec = importlib.util.spec_from_file_location("f2_compose_bootstrap", COMPOSE_FILE.parent / "bootstrap.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bootstrap_secrets(out: Path) -> list[str]:
    return load_bootstrap().write_all(out, [str(VENV_BIN / "f2")], ["mqtt.example.com"])


def test_bootstrap_writes_every_secret_compose_mounts(tmp_path) -> None:
    out = tmp_path / "secrets"
    created = bootstrap_secrets(out)
    assert created
    for name, secret in resolved()["secrets"].items():
        relative = secret["file"].split("/deploy/compose/secrets/", 1)[1]
        path = out / relative
        assert path.is_file() and path.stat().st_size > 0, f"bootstrap does not write {name} ({relative})"
    assert out.stat().st_mode & 0o777 == 0o700
    # Idempotent: a second run keeps every file.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert bootstrap_secrets(out) == []
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # The DSNs and URLs are built from the same passwords the roles and ACLs get.
    sink_pw = (out / "f2_sink_db_password").read_text()
    assert (out / "sink_timeseries_dsn").read_text() == f"postgresql://f2_sink:{sink_pw}@timescaledb:5432/f2"
    assert "user default off" in (out / "redis_users.acl").read_text()
    assert (out / "mosquitto_passwd").read_text().startswith("f2-bridge:$7$101$")


def container_user(service: dict[str, Any]) -> tuple[int, int]:
    uid, _, gid = str(service["user"]).partition(":")
    return int(uid), int(gid or uid)


def can_read(mode: int, owner: tuple[int, int], user: tuple[int, int]) -> bool:
    if user[0] == owner[0]:
        return bool(mode & stat.S_IRUSR)
    if user[1] == owner[1]:
        return bool(mode & stat.S_IRGRP)
    return bool(mode & stat.S_IROTH)


# Certificates and the CRL: public, any user may read them.
PUBLIC_SECRETS = {"f2_ca_cert", "mqtt_server_cert", "mqtt_crl"}


def test_each_secret_file_is_readable_by_the_containers_that_mount_it_alone(tmp_path) -> None:
    """Compose bind-mounts secret files with the host's owner and mode: each must be readable by the `user:` of
    every service that mounts it, and by no other user (but the public certificates); never writable by them.
    Owners are checked where bootstrap can set them (as root, as CI runs)."""
    out = tmp_path / "secrets"
    bootstrap_secrets(out)
    as_root = os.geteuid() == 0
    readers: dict[str, set[tuple[int, int]]] = {}
    for service in services().values():
        for name in secret_names(service):
            readers.setdefault(name, set()).add(container_user(service))
    assert readers, "no service mounts a secret"
    everyone = {container_user(service) for service in services().values()}
    for name, secret in resolved()["secrets"].items():
        relative = secret["file"].split("/deploy/compose/secrets/", 1)[1]
        if relative.startswith("pki/"):  # the enrollment service mounts the whole PKI folder
            readers.setdefault(name, set()).add(container_user(services()["enroll"]))
        info = (out / relative).stat()
        mode, owner = stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
        assert not mode & 0o022, f"{name}: mode {mode:o} lets others write it"
        if name in PUBLIC_SECRETS:
            assert mode & 0o444 == 0o444, f"{name}: a certificate every container may read, mode {mode:o}"
            continue
        assert not mode & stat.S_IRWXO, f"{name}: mode {mode:o} lets every user read it"
        if not as_root:
            continue
        for user in readers.get(name, set()):
            assert can_read(mode, owner, user), f"{name} ({owner}, {mode:o}) is unreadable for its service's {user}"
        for user in everyone - readers.get(name, set()):
            assert not can_read(mode, owner, user) or user[0] in {u for u, _ in readers.get(name, set())}, (
                f"{name} ({owner}, {mode:o}) is readable by {user}, whose containers do not mount it"
            )
    # The enrollment service writes in the PKI folder (read-write mount): it belongs to that service's user.
    pki = (out / "pki").stat()
    if as_root:
        assert (pki.st_uid, pki.st_gid) == container_user(services()["enroll"])
    assert stat.S_IMODE(pki.st_mode) == 0o700
    assert stat.S_IMODE((out / "pki" / "ca.key").stat().st_mode) == 0o600


def test_bootstrap_refuses_to_run_without_root_and_writes_nothing(tmp_path) -> None:
    """It hands files to other users (chown), which needs root: as another user it says how and writes nothing."""
    if os.geteuid() != 0:
        result = run_bootstrap_as(None, tmp_path)
    else:
        nobody = 65534
        tmp_path.chmod(0o777)
        result = run_bootstrap_as(nobody, tmp_path)
    assert result.returncode == 2
    assert "needs root" in result.stderr and "sudo" in result.stderr
    assert not (tmp_path / "secrets").exists()


def run_bootstrap_as(uid: int | None, where: Path) -> subprocess.CompletedProcess[str]:
    # The system's Python: the script needs only the standard library (and another user may not reach the venv).
    python = sys.executable if uid is None else "/usr/bin/python3"
    return subprocess.run(
        [python, str(COMPOSE_FILE.parent / "bootstrap.py"), "--out", str(where / "secrets")],
        capture_output=True,
        text=True,
        user=uid,
        env={"PATH": os.environ["PATH"]},
        timeout=60,
        check=False,
    )


def test_compose_secrets_are_git_ignored() -> None:
    ignore = (COMPOSE_FILE.parent / ".gitignore").read_text().split()
    assert "/secrets/" in ignore
    result = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/compose/secrets/owner_dsn"],
        cwd=COMPOSE_FILE.parents[2],
        check=False,
    )
    assert result.returncode == 0


def test_bootstrap_mosquitto_hash_matches_mosquitto_format() -> None:
    import base64
    import hashlib

    entry = load_bootstrap().mosquitto_hash("s3cret")
    _, kind, iterations, salt, digest = entry.split("$")
    assert kind == "7" and iterations == "101"
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", base64.b64decode(salt), 101)
    assert base64.b64decode(digest) == expected


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
