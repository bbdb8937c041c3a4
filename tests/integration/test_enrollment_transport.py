"""The enrollment service's transport, against a real TLS server on a real port (and the stack's registry):
the wire format of its answers, routing and rate limiting before routing, malformed HTTP, the limits against
slow and numerous clients, the registry's outage, an unexpected failure, and a stop during a request.

Expected values are written out here (status lines, JSON bytes, timings from the settings), not taken from
the service's code. tests/integration/test_enrollment.py covers the enrollment rules themselves.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from certs.authority import CertificateAuthority
from certs.enrollment import EnrollmentServer, JsonLogFormatter, build_server
from certs.settings import EnrollSettings
from f2_platform.db.migrations import migrate
from f2_platform.registry.sample import claiming_code
from f2_platform.stack.ports import free_port

pytestmark = pytest.mark.integration

MAC = "aabbccddee04"  # a sample controller; any ledger row a test makes is removed again
UNKNOWN_MAC = "aabbccddee99"


@pytest.fixture(scope="module")
def registry(migrated) -> str:
    dsn = migrated.registry_dsn
    migrate(dsn, "registry")
    return dsn


def _forget(dsn: str, mac: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('DELETE FROM "VtDevice".f2_enrollments WHERE mac = %s', (mac,))


def _ledger_row(dsn: str, mac: str) -> tuple[Any, ...] | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute('SELECT serial FROM "VtDevice".f2_enrollments WHERE mac = %s', (mac,)).fetchone()


@dataclass
class Running:
    server: EnrollmentServer
    ca: CertificateAuthority
    log: io.StringIO
    dsn: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in self.log.getvalue().splitlines()]
        return [e for e in found if event is None or e.get("event") == event]


@pytest.fixture
def serve(registry: str, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start a service with the given settings on a free port, its log captured; stopped afterwards."""
    started: list[Running] = []
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("f2.enroll")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def start(**overrides: Any) -> Running:
        ca = CertificateAuthority(tmp_path / f"pki{len(started)}", broker_user=None)
        ca.init()
        settings = EnrollSettings(**{"host": "127.0.0.1", "port": 0, **overrides})
        dsn = [registry]  # a test may point the service elsewhere after it started
        server = build_server(settings, ca, lambda: dsn[0])
        server.start()
        running = Running(server, ca, stream, dsn)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.server.stop()
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _tls(running: Running) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(running.ca.ca_cert_path))


def _connect(running: Running, timeout: float = 10) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", running.port), timeout=timeout)
    return _tls(running).wrap_socket(raw, server_hostname="127.0.0.1")


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, ssl.SSLError):
        pass
    return b"".join(chunks)


def exchange(running: Running, data: bytes) -> bytes:
    """Send raw bytes over TLS and read the whole reply, until the server closes the connection."""
    with _connect(running) as tls:
        tls.sendall(data)
        return _read_all(tls)


@dataclass
class Reply:
    status_line: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


def parse(reply: bytes) -> Reply:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(lines[0], headers, body)


def http(
    running: Running, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> Reply:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return parse(exchange(running, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")))


def enroll_body(mac: str, code: str) -> bytes:
    return json.dumps({"mac": mac, "claiming_code": code, "generate_key": True}).encode()


JSON = {"Content-Type": "application/json"}


def post_head(framing: str) -> bytes:
    """The head of a JSON POST to the enrollment path, with `framing` (a Content-Length or Transfer-Encoding)."""
    return f"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()


# -- the wire format -----------------------------------------------------------------------------


def test_answers_are_http_10_json_with_the_service_headers_and_close_the_connection(serve) -> None:
    running = serve()
    reply = http(running, "GET", "/healthz")
    assert reply.status_line == "HTTP/1.0 200 OK"
    assert reply.body == b'{"status": "ok"}'  # json.dumps' default separators, as always
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == str(len(reply.body))
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["server"] == "f2-enroll"
    assert reply.headers["connection"] == "close"
    assert "date" in reply.headers

    refused = http(running, "POST", "/v1/enroll", enroll_body(UNKNOWN_MAC, "claim-wrong"), JSON)
    assert refused.status_line == "HTTP/1.0 403 Forbidden"
    assert refused.json()["error"] == "claim-rejected"
    assert refused.headers["content-length"] == str(len(refused.body))


def test_metrics_are_prometheus_text(serve) -> None:
    running = serve()
    reply = http(running, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    assert "cache-control" not in reply.headers
    lines = [line for line in reply.body.decode().splitlines() if line.startswith("f2_certificate_expiry")]
    assert any('kind="ca"' in line and 'daemon="enroll"' in line for line in lines), lines


def test_paths_and_methods_are_answered_as_before(serve) -> None:
    running = serve()
    cases = [
        ("POST", "/healthz", b"{}", 404, "not-found"),
        ("GET", "/healthz/", None, 404, "not-found"),  # no redirect to /healthz
        ("GET", "/docs", None, 404, "not-found"),  # no generated API pages
        ("GET", "/openapi.json", None, 404, "not-found"),
        ("PUT", "/v1/enroll", b"{}", 405, "method-not-allowed"),
        ("OPTIONS", "/v1/enroll", None, 501, "not-implemented"),
    ]
    for method, path, body, status, error in cases:
        reply = http(running, method, path, body)
        assert (reply.status, reply.json()["error"]) == (status, error), (method, path, reply)
        assert reply.status_line.startswith("HTTP/1.0 ")
    assert http(running, "PUT", "/v1/enroll", b"{}").headers["allow"] == "POST"
    head = http(running, "HEAD", "/healthz")  # only GET is the health check
    assert head.status == 404 and head.body == b"" and int(head.headers["content-length"]) > 0
    head = http(running, "HEAD", "/v1/enroll")
    assert (head.status, head.headers["allow"], head.body) == (405, "POST", b"")


def test_rate_limits_come_before_routing_and_spare_only_the_probes(serve) -> None:
    running = serve(per_ip_burst=2, per_ip_rate=0.001)
    assert [http(running, "GET", "/nothing").status for _ in range(2)] == [404, 404]
    limited = http(running, "POST", "/healthz", b"{}")
    assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    assert http(running, "OPTIONS", "/v1/enroll").status == 501  # not a method: refused before the limits
    assert http(running, "GET", "/healthz").status == 200
    assert http(running, "GET", "/metrics").status == 200
    reasons = [e["reason"] for e in running.events("enroll.refused")]
    assert reasons == ["unknown-path", "unknown-path", "rate-limited-client", "http-501"]


def test_x_forwarded_for_is_not_trusted(serve, registry: str) -> None:
    running = serve(per_ip_burst=1, per_ip_rate=0.001)
    first = http(running, "POST", "/v1/enroll", enroll_body(UNKNOWN_MAC, "x"), {**JSON, "X-Forwarded-For": "10.0.0.1"})
    second = http(running, "POST", "/v1/enroll", enroll_body(UNKNOWN_MAC, "x"), {**JSON, "X-Forwarded-For": "10.0.0.2"})
    assert (first.status, second.status) == (403, 429)
    assert {e["client"] for e in running.events("enroll.refused")} == {"127.0.0.1"}


# -- malformed HTTP --------------------------------------------------------------------------------


def test_a_request_that_is_not_http_gets_a_json_400(serve) -> None:
    running = serve()
    reply = parse(exchange(running, b"this is not http\r\n\r\n"))
    assert reply.status_line == "HTTP/1.0 400 Bad Request"
    assert reply.json()["error"] == "bad-request" and "Content-Length" in reply.json()["message"]
    (event,) = running.events("enroll.refused")
    assert (event["status"], event["reason"], event["client"]) == (400, "malformed-http", "127.0.0.1")


def test_an_oversized_head_gets_a_json_431(serve) -> None:
    running = serve()
    padding = "a" * (70 * 1024)  # above the 64 KiB the request line and headers may take
    reply = parse(exchange(running, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {padding}\r\n\r\n".encode()))
    assert reply.status == 431
    assert reply.json() == {
        "error": "request-header-fields-too-large",
        "message": f"the request line and headers exceed {64 * 1024} bytes",
    }


def test_a_chunked_body_is_refused_and_read_so_the_client_gets_the_answer(serve) -> None:
    running = serve()
    body = enroll_body(UNKNOWN_MAC, "x")
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    reply = parse(exchange(running, post_head("Transfer-Encoding: chunked") + chunked))
    assert reply.status == 400
    assert reply.json()["message"] == "chunked transfer encoding is not supported; send Content-Length"


# -- slow and numerous clients ------------------------------------------------------------------


def _closed_after(sock: socket.socket) -> tuple[bytes, float]:
    started = time.monotonic()
    data = _read_all(sock)
    return data, time.monotonic() - started


def test_a_connection_without_a_tls_handshake_is_closed_after_the_request_timeout(serve) -> None:
    running = serve(request_timeout_s=1)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        data, waited = _closed_after(raw)
    assert data == b"" and 0.8 <= waited < 4, waited
    time.sleep(0.2)
    (event,) = running.events("enroll.tls_failed")
    assert event["client"] == "127.0.0.1" and "1.0 seconds" in event["detail"]


def test_plaintext_is_logged_as_a_failed_handshake(serve) -> None:
    running = serve()
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
        raw.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert not _read_all(raw).startswith(b"HTTP/")
    time.sleep(0.2)
    assert [e["client"] for e in running.events("enroll.tls_failed")] == ["127.0.0.1"]


def test_a_client_that_stops_sending_is_cut_after_the_request_timeout(serve) -> None:
    running = serve(request_timeout_s=1)
    with _connect(running) as tls:
        tls.sendall(b"POST /v1/enroll HTTP/1.1\r\nHost: x\r\n")
        data, waited = _closed_after(tls)
    assert data == b"" and 0.8 <= waited < 4, waited
    (event,) = running.events("enroll.connection_lost")
    assert event["detail"] == "no request bytes for 1 s"


def test_a_client_that_sends_its_body_too_slowly_is_cut_and_the_body_refused(serve) -> None:
    running = serve(request_timeout_s=1)
    with _connect(running) as tls:
        tls.sendall(post_head("Content-Length: 50") + b"{")
        data, _ = _closed_after(tls)
    assert data == b""
    time.sleep(0.2)
    assert [e["reason"] for e in running.events("enroll.refused")] == ["short-body"]


def test_a_trickling_client_is_cut_at_the_whole_request_deadline(serve) -> None:
    running = serve(request_timeout_s=1)  # each wait 1 s, the whole request 3 s
    started = time.monotonic()
    with _connect(running) as tls:
        tls.sendall(b"POST /v1/enroll HTTP/1.1\r\n")
        tls.settimeout(0.4)
        closed = False
        while not closed and time.monotonic() - started < 10:
            try:
                tls.sendall(b"X")  # one header byte every 0.4 s: never idle for 1 s
                closed = tls.recv(1) == b""
            except TimeoutError:
                continue
            except (OSError, ssl.SSLError):
                closed = True
    waited = time.monotonic() - started
    assert closed and 2.7 <= waited < 6, waited
    (event,) = running.events("enroll.connection_lost")
    assert event["detail"] == "the request was not complete 3 s after connecting"


def test_connections_beyond_the_limit_are_closed_without_an_answer(serve) -> None:
    running = serve(max_connections=2)
    first, second = _connect(running), _connect(running)  # handshakes done, no request yet
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
            data, waited = _closed_after(raw)
        assert data == b"" and waited < 5  # at once, not after the 10 s handshake timeout
        refused = running.events("enroll.refused")
        assert [(e["reason"], e["client"]) for e in refused] == [("too-many-connections", "127.0.0.1")]
    finally:
        first.close()
    time.sleep(0.3)  # the server sees the close
    try:
        assert http(running, "GET", "/healthz").status == 200  # a freed slot serves again
    finally:
        second.close()


# -- failures and stopping --------------------------------------------------------------------------


def test_a_registry_outage_is_a_503_with_retry_after(serve) -> None:
    running = serve()
    running.dsn[0] = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    reply = http(running, "POST", "/v1/enroll", enroll_body(MAC, claiming_code(MAC)), JSON)
    assert (reply.status, reply.headers["retry-after"]) == (503, "30")
    assert reply.json() == {"error": "unavailable", "message": "the registry is unavailable; retry later"}
    assert running.events("enroll.registry_unavailable")


def test_an_unexpected_failure_is_a_json_500_logged_once_with_the_mac(serve, registry: str) -> None:
    running = serve()
    running.ca.ca_key_path.write_text("not a key")  # signing fails after the claim was accepted
    reply = http(running, "POST", "/v1/enroll", enroll_body(MAC, claiming_code(MAC)), JSON)
    assert reply.status == 500
    assert reply.json() == {"error": "internal-error", "message": "the enrollment failed on the server; retry later"}
    (failed,) = running.events("enroll.failed")
    assert (failed["mac"], failed["client"]) == (MAC, "127.0.0.1") and "exc" in failed
    assert running.events("enroll.refused") == []
    assert _ledger_row(registry, MAC) is None  # rolled back: the code is not used up


def test_an_answer_the_client_did_not_wait_for_is_logged_as_undelivered(serve, registry: str) -> None:
    running = serve()
    body = enroll_body(MAC, claiming_code(MAC))
    head = post_head(f"Content-Length: {len(body)}")
    try:
        with _connect(running) as tls:
            tls.sendall(head + body)
        deadline = time.monotonic() + 20
        while not running.events("enroll.undelivered") and time.monotonic() < deadline:
            time.sleep(0.05)
        (event,) = running.events("enroll.undelivered")
        assert event["mac"] == MAC and event["hint"] == f"f2 certs allow-reenroll {MAC}"
        row = _ledger_row(registry, MAC)
        assert row is not None and row[0] == event["serial"]
    finally:
        _forget(registry, MAC)


def test_stop_lets_a_request_in_progress_finish(serve) -> None:
    running = serve()
    body = enroll_body(UNKNOWN_MAC, "claim-wrong")
    head = post_head(f"Content-Length: {len(body)}")
    with _connect(running) as tls:
        tls.sendall(head + body[:10])
        time.sleep(0.2)
        stopping = threading.Thread(target=running.server.stop)
        stopping.start()
        time.sleep(0.5)
        assert stopping.is_alive()  # waiting for this request
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", running.port), timeout=2).close()
        tls.sendall(body[10:])
        reply = parse(_read_all(tls))
    stopping.join(10)
    assert not stopping.is_alive()
    assert reply.status == 403
