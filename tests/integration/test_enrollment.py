"""Enrollment against the real services: `f2 certs serve` as a process over real TLS, the stack's
PostgreSQL registry (sample controllers and their claiming codes) and the stack's CA and broker.

Acceptance (issue 4): a device enrolls with its claiming code and then connects; a wrong code, an
unknown MAC and a second enrollment with the same code are refused.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import CertificateAuthority, generate_csr
from certs.cli import certs_group
from certs.enroll_client import (
    AlreadyEnrolledError,
    ClaimRejectedError,
    EnrollmentError,
    RateLimitedError,
    enroll,
)
from certs.enrollment import JsonLogFormatter, build_server
from certs.enrollment_rules import CLAIM_REJECTED_MESSAGE, ENROLL_PATH
from certs.settings import EnrollSettings
from f2_platform.db.migrations import migrate
from f2_platform.registry.sample import claiming_code
from f2_platform.stack.manager import Stack
from f2_platform.stack.ports import free_port

pytestmark = pytest.mark.integration

MAC = "aabbccddee01"  # sample controller 1, claiming code claim-aabbccddee01
MAC_GENERATED = "aabbccddee02"
MAC_RACE = "aabbccddee03"
UNKNOWN_MAC = "aabbccddee99"
SAMPLE_MACS = ["aabbccddee01", "aabbccddee02", "aabbccddee03", "aabbccddee04"]
WRONG_CODE = "claim-wrong-0123456789"
OPENSSL = shutil.which("openssl")

SERVE = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from certs.cli import certs_group

    certs_group.main(
        args=sys.argv[1:],
        prog_name="f2 certs",
        obj={
            "pki_dir": Path(os.environ["F2_TEST_PKI_DIR"]),
            "registry_dsn": lambda: os.environ["F2_REGISTRY_DSN"],
            "broker_user": None,
        },
    )
    """
)


def _forget_enrollments(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('DELETE FROM "VtDevice".f2_enrollments WHERE mac = ANY(%s)', (SAMPLE_MACS,))


def ledger(dsn: str, mac: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute('SELECT * FROM "VtDevice".f2_enrollments WHERE mac = %s', (mac,))
        row = cur.fetchone()
        if row is None:
            return None
        assert cur.description is not None
        return dict(zip([column.name for column in cur.description], row, strict=True))


@pytest.fixture(scope="module")
def registry(migrated) -> Iterator[str]:
    """The registry with the enrollment ledger (migration 0004), no sample controller enrolled yet.

    The ledger is emptied again afterwards: the simulator of later tests enrolls the sample fleet."""
    dsn = migrated.registry_dsn
    migrate(dsn, "registry")
    _forget_enrollments(dsn)
    yield dsn
    _forget_enrollments(dsn)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    ca_cert: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


def tls_context(ca_cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_cert))


def request(
    host: str,
    port: int,
    ca_cert: Path,
    payload: dict[str, Any] | bytes | None = None,
    *,
    method: str = "POST",
    path: str = ENROLL_PATH,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    conn = http.client.HTTPSConnection(host, port, context=tls_context(ca_cert), timeout=20)
    try:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        answer = json.loads(raw) if raw else {}
        return response.status, answer, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def csr_request(mac: str, code: str) -> dict[str, Any]:
    return {"mac": mac, "claiming_code": code, "csr": generate_csr(mac)[1].decode()}


@pytest.fixture(scope="module")
def service(registry: str, stack: Stack, stack_env: dict[str, str], tmp_path_factory) -> Iterator[Service]:
    """`f2 certs serve` on a free port, with the stack's CA (whose server certificate names 127.0.0.1)."""
    host, port = "127.0.0.1", free_port()
    log_path = tmp_path_factory.mktemp("enroll") / "serve.log"
    env = {
        **stack_env,
        "F2_TEST_PKI_DIR": str(stack.layout.pki_dir),
        # Generous limits: the burst test runs its own service with tight ones.
        "F2_ENROLL_PER_IP_BURST": "1000",
        "F2_ENROLL_PER_IP_RATE": "100",
        "F2_ENROLL_GLOBAL_BURST": "1000",
        "F2_ENROLL_GLOBAL_RATE": "100",
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--host", host, "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    svc = Service(proc, host, port, stack.layout.pki_dir / "ca.crt", log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"f2 certs serve exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            status, _, _ = request(host, port, svc.ca_cert, method="GET", path="/healthz", content_type=None)
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"f2 certs serve did not answer /healthz:\n{log_path.read_text()}")
        time.sleep(0.2)
    try:
        yield svc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def mqtt_connects(stack: Stack, ca_cert: Path, certfile: Path, keyfile: Path, mac: str) -> bool:
    """Connect to the broker's device listener with the certificate and subscribe to the own commands."""
    connected, subscribed = threading.Event(), threading.Event()
    granted: list[bool] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"enroll-test-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.tls_set(ca_certs=str(ca_cert), certfile=str(certfile), keyfile=str(keyfile))
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None

    def on_subscribe(c: object, u: object, mid: int, codes: list[Any], p: object) -> None:
        granted.extend(not code.is_failure for code in codes)
        subscribed.set()

    client.on_subscribe = on_subscribe
    try:
        client.connect(stack.settings.host, stack.settings.mqtt_tls_port, keepalive=10)
    except (OSError, ssl.SSLError):
        return False
    client.loop_start()
    try:
        if not connected.wait(10):
            return False
        # Subscribing (not publishing): nothing of this test reaches the pipeline.
        client.subscribe(f"cmnd/f2-{mac}/#", qos=1)
        return subscribed.wait(10) and granted == [True] and client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_device_certificate(cert_pem: bytes, ca_cert: Path, mac: str) -> x509.Certificate:
    """Independently of the certs package: CN = MAC, client auth, signed by the CA (and `openssl verify`)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [mac]
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    if OPENSSL is not None:
        result = subprocess.run(
            [OPENSSL, "verify", "-CAfile", str(ca_cert), "/dev/stdin"],
            input=cert_pem,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    return cert


def spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- the acceptance path -----------------------------------------------------------------------


def test_the_ledger_table_exists(registry: str) -> None:
    with psycopg.connect(registry) as conn:
        assert conn.execute("SELECT to_regclass('\"VtDevice\".f2_enrollments')").fetchone() == (
            '"VtDevice".f2_enrollments',
        )


def test_a_device_enrolls_with_its_claiming_code_and_then_connects(
    service: Service, registry: str, stack: Stack, tmp_path: Path
) -> None:
    out = tmp_path / "device"
    crt, key = enroll(service.url, MAC, claiming_code(MAC), service.ca_cert, out)
    assert (crt, key) == (out / f"{MAC}.crt", out / f"{MAC}.key")
    assert mode(key) == 0o600 and mode(crt) == 0o644
    cert = check_device_certificate(crt.read_bytes(), service.ca_cert, MAC)
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert spki(cert.public_key()) == spki(private_key.public_key())
    row = ledger(registry, MAC)
    assert row is not None
    assert row["serial"] == format(cert.serial_number, "x")
    assert (row["key_source"], row["enrollments"], row["reenroll_allowed"]) == ("csr", 1, False)
    assert row["client_address"] == "127.0.0.1"
    assert mqtt_connects(stack, service.ca_cert, crt, key, MAC), "the enrolled certificate was not accepted"


def test_a_second_enrollment_with_the_same_code_is_refused(service: Service, tmp_path: Path) -> None:
    with pytest.raises(AlreadyEnrolledError) as caught:
        enroll(service.url, MAC, claiming_code(MAC), service.ca_cert, tmp_path)
    assert caught.value.status == 409 and f"f2 certs allow-reenroll {MAC}" in str(caught.value)
    assert not (tmp_path / f"{MAC}.crt").exists() and not (tmp_path / f"{MAC}.key").exists()
    status, answer, _ = request(
        service.host,
        service.port,
        service.ca_cert,
        {"mac": MAC, "claiming_code": claiming_code(MAC), "generate_key": True},
    )
    assert (status, answer["error"]) == (409, "already-enrolled")


def test_a_wrong_code_and_an_unknown_mac_get_the_same_403(service: Service, registry: str, tmp_path: Path) -> None:
    answers = [
        request(service.host, service.port, service.ca_cert, csr_request(mac, code))
        for mac, code in [
            ("aabbccddee04", WRONG_CODE),  # a controller not enrolled yet
            (MAC, WRONG_CODE),  # an enrolled one: the code is checked first, so no 409
            (UNKNOWN_MAC, claiming_code(UNKNOWN_MAC)),
            (UNKNOWN_MAC, WRONG_CODE),
        ]
    ]
    for status, answer, _ in answers:
        assert status == 403
        assert answer == {"error": "claim-rejected", "message": CLAIM_REJECTED_MESSAGE}
    with pytest.raises(ClaimRejectedError) as caught:
        enroll(service.url, "aabbccddee04", WRONG_CODE, service.ca_cert, tmp_path)
    assert caught.value.status == 403 and WRONG_CODE not in str(caught.value)
    assert ledger(registry, "aabbccddee04") is None and ledger(registry, UNKNOWN_MAC) is None


def test_allow_reenroll_permits_exactly_one_more_enrollment(
    service: Service, registry: str, stack: Stack, tmp_path: Path
) -> None:
    before = ledger(registry, MAC)
    assert before is not None
    obj = {"pki_dir": stack.layout.pki_dir, "registry_dsn": registry, "broker_user": None}
    result = CliRunner().invoke(certs_group, ["allow-reenroll", MAC], obj=obj)
    assert result.exit_code == 0, result.output
    assert f"{MAC} may enroll once more" in result.output and "f2 certs revoke" in result.output
    assert ledger(registry, MAC)["reenroll_allowed"] is True  # type: ignore[index]

    crt, _ = enroll(service.url, MAC, claiming_code(MAC), service.ca_cert, tmp_path)
    cert = check_device_certificate(crt.read_bytes(), service.ca_cert, MAC)
    after = ledger(registry, MAC)
    assert after is not None
    assert after["serial"] == format(cert.serial_number, "x") != before["serial"]
    assert after["previous_serial"] == before["serial"]
    assert (after["enrollments"], after["reenroll_allowed"]) == (2, False)

    with pytest.raises(AlreadyEnrolledError):
        enroll(service.url, MAC, claiming_code(MAC), service.ca_cert, tmp_path / "again")


def test_allow_reenroll_refuses_unknown_macs_and_explains_unenrolled_ones(stack: Stack, registry: str) -> None:
    obj = {"pki_dir": stack.layout.pki_dir, "registry_dsn": registry}
    unknown = CliRunner().invoke(certs_group, ["allow-reenroll", UNKNOWN_MAC], obj=obj)
    assert unknown.exit_code == 1 and "not a controller in the registry" in unknown.output
    fresh = CliRunner().invoke(certs_group, ["allow-reenroll", "aabbccddee04"], obj=obj)
    assert fresh.exit_code == 0 and "has not enrolled yet" in fresh.output
    assert ledger(registry, "aabbccddee04") is None
    bad = CliRunner().invoke(certs_group, ["allow-reenroll", "AA:BB:CC:DD:EE:04"], obj=obj)
    assert bad.exit_code == 1 and "did you mean aabbccddee04" in bad.output
    no_dsn = CliRunner().invoke(certs_group, ["allow-reenroll", "aabbccddee04"], obj={"pki_dir": "/nonexistent"})
    assert no_dsn.exit_code == 2 and "no registry DSN" in no_dsn.output


def test_a_device_can_ask_for_a_generated_key(service: Service, registry: str) -> None:
    status, answer, headers = request(
        service.host,
        service.port,
        service.ca_cert,
        {"mac": MAC_GENERATED, "claiming_code": claiming_code(MAC_GENERATED), "generate_key": True},
    )
    assert status == 200, answer
    assert headers["cache-control"] == "no-store"
    assert set(answer) == {"certificate", "ca_certificate", "private_key", "serial", "not_after"}
    assert answer["ca_certificate"].encode() == service.ca_cert.read_bytes()
    cert = check_device_certificate(answer["certificate"].encode(), service.ca_cert, MAC_GENERATED)
    key = serialization.load_pem_private_key(answer["private_key"].encode(), password=None)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert answer["serial"] == format(cert.serial_number, "x")
    assert ledger(registry, MAC_GENERATED)["key_source"] == "generated"  # type: ignore[index]


def test_concurrent_enrollments_with_one_code_yield_one_certificate(service: Service, registry: str) -> None:
    payloads = [csr_request(MAC_RACE, claiming_code(MAC_RACE)) for _ in range(6)]
    results: list[int] = []
    barrier = threading.Barrier(len(payloads))

    def attempt(payload: dict[str, Any]) -> None:
        barrier.wait()
        results.append(request(service.host, service.port, service.ca_cert, payload)[0])

    threads = [threading.Thread(target=attempt, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [200, 409, 409, 409, 409, 409]
    assert ledger(registry, MAC_RACE)["enrollments"] == 1  # type: ignore[index]


# -- malformed requests and transport -----------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "says"),
    [
        (b"{not json", "application/json", 400, "not valid UTF-8 JSON"),
        ({"mac": MAC, "claiming_code": "x"}, "application/json", 400, "csr"),
        (
            {"mac": "AABBCCDDEE01", "claiming_code": "x", "generate_key": True},
            "application/json",
            400,
            "did you",
        ),
        ({"mac": MAC, "claiming_code": "x", "csr": "junk"}, "application/json", 400, "CERTIFICATE REQUEST"),
        ({"mac": MAC, "claiming_code": "x", "generate_key": True}, "text/plain", 400, "application/json"),
        (b"x" * 200_000, "application/json", 413, "exceeds"),
    ],
)
def test_malformed_requests_are_refused_with_a_clear_message(
    service: Service, payload: dict[str, Any] | bytes, content_type: str, status: int, says: str
) -> None:
    got, answer, _ = request(service.host, service.port, service.ca_cert, payload, content_type=content_type)
    assert got == status and says in answer["message"], answer


def test_wrong_paths_and_methods(service: Service) -> None:
    status, answer, _ = request(service.host, service.port, service.ca_cert, b"{}", path="/v1/other")
    assert (status, answer["error"]) == (404, "not-found")
    status, answer, headers = request(service.host, service.port, service.ca_cert, method="GET", content_type=None)
    assert (status, answer["error"], headers["allow"]) == (405, "method-not-allowed", "POST")


def test_a_request_without_content_length_is_refused(service: Service) -> None:
    context = tls_context(service.ca_cert)
    with (
        socket.create_connection((service.host, service.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=service.host) as tls,
    ):
        tls.sendall(b"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n")
        chunks = []
        while chunk := tls.recv(4096):
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.0 411") and "length-required" in reply


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_only_tls_12_or_newer_is_accepted(service: Service) -> None:
    context = tls_context(service.ca_cert)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        pytest.raises((ssl.SSLError, OSError)),
        socket.create_connection((service.host, service.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=service.host) as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        tls.recv(100)
    context = tls_context(service.ca_cert)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((service.host, service.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=service.host) as tls,
    ):
        assert tls.version() == "TLSv1.2"


def test_plaintext_http_gets_no_answer(service: Service) -> None:
    with socket.create_connection((service.host, service.port), timeout=10) as raw:
        raw.sendall(b"POST /v1/enroll HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        try:
            reply = raw.recv(4096)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/")


def test_the_client_refuses_a_server_it_cannot_verify(service: Service, tmp_path: Path) -> None:
    other = CertificateAuthority(tmp_path / "other-pki", broker_user=None)
    other.init()
    with pytest.raises(EnrollmentError, match="not trusted"):
        enroll(service.url, "aabbccddee04", claiming_code("aabbccddee04"), other.ca_cert_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- bursts (a service of its own with tight limits) ---------------------------------------------


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("f2.enroll")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_a_burst_beyond_the_limit_gets_429(registry: str, tmp_path: Path, captured_log: io.StringIO) -> None:
    ca = CertificateAuthority(tmp_path / "pki", broker_user=None)
    ca.init()
    settings = EnrollSettings(
        host="127.0.0.1", port=0, per_ip_burst=3, per_ip_rate=0.001, global_burst=1000, global_rate=100
    )
    server = build_server(settings, ca, registry)
    # No server certificate in this pki dir: the service issued one for its listen address.
    issued = x509.load_pem_x509_certificate(ca.server_cert_path.read_bytes())
    san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    server.start()
    try:
        statuses = []
        for _ in range(8):
            status, answer, headers = request(
                "127.0.0.1", server.port, ca.ca_cert_path, csr_request("aabbccddee04", WRONG_CODE)
            )
            statuses.append(status)
        assert statuses == [403, 403, 403, 429, 429, 429, 429, 429]
        assert answer["error"] == "rate-limited" and int(headers["retry-after"]) >= 1
        with pytest.raises(RateLimitedError) as caught:
            enroll(server.url, "aabbccddee04", WRONG_CODE, ca.ca_cert_path, tmp_path / "out", rate_limit_wait=0)
        assert caught.value.status == 429 and caught.value.retry_after is not None
        # /healthz stays available to probes.
        assert request("127.0.0.1", server.port, ca.ca_cert_path, method="GET", path="/healthz")[0] == 200
    finally:
        server.stop()
    events = [json.loads(line) for line in captured_log.getvalue().splitlines()]
    refused = [e for e in events if e.get("event") == "enroll.refused"]
    assert [e["reason"] for e in refused] == ["wrong-code"] * 3 + ["rate-limited-client"] * 6
    assert all(e["client"] == "127.0.0.1" for e in refused)
    assert WRONG_CODE not in captured_log.getvalue()


def test_the_global_bucket_limits_all_clients_together(
    registry: str, tmp_path: Path, captured_log: io.StringIO
) -> None:
    ca = CertificateAuthority(tmp_path / "pki", broker_user=None)
    ca.init()
    settings = EnrollSettings(host="127.0.0.1", port=0, per_ip_burst=100, global_burst=2, global_rate=0.001)
    server = build_server(settings, ca, registry)
    server.start()
    try:
        statuses = [
            request("127.0.0.1", server.port, ca.ca_cert_path, csr_request(UNKNOWN_MAC, WRONG_CODE)) for _ in range(3)
        ]
    finally:
        server.stop()
    assert [s for s, _, _ in statuses] == [403, 403, 429]
    assert "all clients" in statuses[-1][1]["message"]
    assert '"reason": "rate-limited-global"' in captured_log.getvalue()


# -- the service's log (last: it stops the service) ------------------------------------------


def test_refusals_are_logged_without_codes_or_keys_and_sigterm_stops_the_service(service: Service) -> None:
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0
    text = service.log_path.read_text()
    for secret in [claiming_code(mac) for mac in SAMPLE_MACS] + [WRONG_CODE, claiming_code(UNKNOWN_MAC)]:
        assert secret not in text
    assert "PRIVATE KEY" not in text and "CERTIFICATE REQUEST" not in text
    events = [json.loads(line) for line in service.log_lines() if line.startswith("{")]
    assert events, text
    reasons = {e.get("reason") for e in events if e.get("event") == "enroll.refused"}
    assert {"wrong-code", "unknown-mac", "already-enrolled", "invalid-json", "body-too-large"} <= reasons
    refused = [e for e in events if e.get("event") == "enroll.refused"]
    assert all(e["client"] == "127.0.0.1" and "status" in e for e in refused if e["reason"] != "too-many-connections")
    issued = [e for e in events if e.get("event") == "enroll.issued"]
    assert {e["mac"] for e in issued} == {MAC, MAC_GENERATED, MAC_RACE}
    assert events[-1]["event"] == "enroll.stopped"


def test_certificate_expiry_is_exported_for_prometheus(stack) -> None:
    """The enrollment service's /metrics lists the CA, the broker certificate and the CRL with their expiry."""
    from cryptography import x509

    from certs.metrics import render

    ca = stack.mosquitto.pki()
    text = render(ca).decode()
    server_cert = x509.load_pem_x509_certificate(ca.server_cert_path.read_bytes())
    expected = server_cert.not_valid_after_utc.timestamp()
    lines = [line for line in text.splitlines() if line.startswith("f2_certificate_expiry_timestamp_seconds{")]
    server_lines = [line for line in lines if 'kind="server"' in line]
    assert server_lines and any(abs(float(line.rsplit(" ", 1)[1]) - expected) < 1 for line in server_lines)
    assert any('kind="ca"' in line for line in lines) and any('kind="crl"' in line for line in lines)
