"""The enrollment service behind `f2 certs serve`: HTTPS (TLS 1.2+), one endpoint.

    POST /v1/enroll   {"mac", "claiming_code", "csr"}  or  {"mac", "claiming_code", "generate_key": true}
      200 {"certificate": PEM, "ca_certificate": PEM, "serial": hex, "not_after": ISO 8601,
           "private_key": PEM (only with generate_key)}
      400 malformed request (the message says what), 411 no Content-Length, 413 body too large,
      403 unknown MAC or wrong claiming code (one answer for both), 409 already enrolled,
      429 too many requests (Retry-After), 503 registry unavailable, 500 anything else
      every error body: {"error": <code>, "message": <text>}
    GET /healthz      200 {"status": "ok"} (not rate limited, touches nothing)
    GET /metrics      certificate and CRL expiry for Prometheus (not rate limited)

A controller is a row of "VtDevice".devices with that macaddress; its claimingcode must match. Each
code enrolls once ("VtDevice".f2_enrollments); `f2 certs allow-reenroll <mac>` permits one more.
Every request except /healthz takes a token from its client IP's bucket and from the global one.
Every refusal is logged as one structured line (logger f2.enroll); claiming codes, CSRs, keys and
request bodies are never logged. The client IP is the TCP peer: X-Forwarded-For is not trusted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final
from urllib.parse import urlsplit

import psycopg
from cryptography import x509

from certs.authority import CertificateAuthority
from certs.enrollment_rules import (
    ENROLL_PATH,
    HEALTH_PATH,
    MAX_BODY_BYTES,
    METRICS_PATH,
    EnrollRequest,
    Refusal,
    bad_request,
    check_claim,
    check_enrollable,
    parse_enroll_request,
    rate_limited,
)
from certs.enrollment_store import DsnSource, EnrollmentStore, RegistryUnavailableError
from certs.errors import CANotInitializedError, CertsError, CSRError
from certs.rate_limit import RateLimiter
from certs.settings import EnrollSettings

log = logging.getLogger("f2.enroll")

# After this many request timeouts in total, a connection is cut even if it keeps trickling bytes.
_DEADLINE_FACTOR: Final = 3
_UNAVAILABLE_RETRY_S: Final = "30"
# A refused request's body is read up to this size so the client gets the answer (see _drain).
_DRAIN_LIMIT: Final = 1024 * 1024


class EnrollmentConfigError(CertsError):
    """The enrollment service cannot start: no CA, no usable TLS certificate, registry not migrated."""


# -- structured log -----------------------------------------------------------------------------


def log_event(level: int, event: str, **fields: object) -> None:
    """One log line: `event key=value ...` as the message, the same fields under `fields` for JSON."""
    present = {key: value for key, value in fields.items() if value is not None}
    text = " ".join(f"{key}={value}" for key, value in present.items())
    log.log(level, "%s %s", event, text, extra={"fields": {"event": event, **present}})


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; the fields of `log_event` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr, unless the process has configured logging already."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root.addHandler(handler)
    root.setLevel(level)


# -- the service (no HTTP) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    mac: str
    serial: str
    not_after: datetime
    key_source: str
    reenrollment: bool
    body: dict[str, str]


class EnrollmentService:
    """Decides and performs one enrollment: registry check, one-time claim, signing, ledger."""

    def __init__(self, ca: CertificateAuthority, store: EnrollmentStore, *, device_days: int) -> None:
        self.ca = ca
        self.store = store
        self.device_days = device_days

    def enroll(self, request: EnrollRequest, client: str) -> Enrolled:
        """Raises Refusal for every answer but 200; other exceptions are the server's own failures."""
        issued = None
        try:
            with self.store.enrollment(request.mac) as tx:
                known, expected = tx.claiming_code()
                check_claim(request.claiming_code, known, expected)
                reenrollment = check_enrollable(request.mac, tx.lock_and_state())
                try:
                    issued = self.ca.issue_device(request.mac, days=self.device_days, csr_pem=request.csr_pem)
                except CSRError as exc:
                    raise bad_request(str(exc), "csr-rejected") from exc
                tx.record(issued.serial, issued.not_after, request.key_source, client)
        except RegistryUnavailableError as exc:
            log_event(logging.ERROR, "enroll.registry_unavailable", error=str(exc))
            raise Refusal(
                503,
                "unavailable",
                "the registry is unavailable; retry later",
                "registry-unavailable",
                retry_after=_UNAVAILABLE_RETRY_S,
            ) from exc
        except (psycopg.Error, CertsError):
            if issued is not None:
                # Signed but not recorded: the certificate exists although the code was not consumed.
                log_event(
                    logging.ERROR,
                    "enroll.unrecorded",
                    mac=request.mac,
                    serial=issued.serial,
                    hint=f"revoke it with `f2 certs revoke {request.mac}` if the device did not receive it",
                )
            raise
        body = {
            "certificate": issued.cert_pem.decode("ascii"),
            "ca_certificate": self.ca.ca_cert_path.read_text("ascii"),
            "serial": issued.serial,
            "not_after": issued.not_after.isoformat(),
        }
        if issued.key_pem is not None:
            body["private_key"] = issued.key_pem.decode("ascii")
        return Enrolled(
            mac=request.mac,
            serial=issued.serial,
            not_after=issued.not_after,
            key_source=request.key_source,
            reenrollment=reenrollment,
            body=body,
        )


# -- TLS ----------------------------------------------------------------------------------------


def _listen_names(host: str) -> tuple[list[str], list[str]]:
    """SANs for a certificate of the listen host: the host itself, plus localhost for local tools."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return sorted({host.lower(), "localhost"}), ["127.0.0.1"]
    if address.is_unspecified:
        return ["localhost"], ["127.0.0.1"]
    return ["localhost"], sorted({str(address), "127.0.0.1"})


def certificate_names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (
        [name.lower() for name in san.get_values_for_type(x509.DNSName)],
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)],
    )


def covers_host(cert: x509.Certificate, host: str) -> bool:
    """True when a client connecting to `host` can verify `cert`; True for a wildcard listen address."""
    dns_names, ips = certificate_names(cert)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.lower().rstrip(".")
        if name in dns_names:
            return True
        parent = name.split(".", 1)[1] if "." in name else None
        return parent is not None and f"*.{parent}" in dns_names
    return address.is_unspecified or str(address) in ips


def server_tls_context(ca: CertificateAuthority, settings: EnrollSettings) -> ssl.SSLContext:
    """TLS 1.2+ with the configured certificate, or the CA's server certificate (issued when missing)."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        cert_path, key_path = settings.tls_cert, settings.tls_key
    else:
        cert_path, key_path = ca.server_cert_path, ca.server_key_path
        if not cert_path.exists() or not key_path.exists():
            names, ips = _listen_names(settings.host)
            issued = ca.issue_server(names, ips)
            log_event(logging.INFO, "enroll.server_certificate_issued", serial=issued.serial, names=names, ips=ips)
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise EnrollmentConfigError(f"cannot read the TLS certificate {cert_path}: {exc}") from exc
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise EnrollmentConfigError(
            f"the TLS certificate {cert_path} is not valid now (valid "
            f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}): "
            f"renew it with `f2 certs server --host ... --ip ...`"
        )
    if not covers_host(cert, settings.host):
        dns_names, ips = certificate_names(cert)
        log_event(
            logging.WARNING,
            "enroll.certificate_name_mismatch",
            certificate=str(cert_path),
            listen_host=settings.host,
            names=dns_names,
            ips=ips,
            hint="devices must connect with one of these names, or reissue with `f2 certs server`",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as exc:
        raise EnrollmentConfigError(f"cannot load the TLS key pair {cert_path} / {key_path}: {exc}") from exc
    return context


# -- HTTP ---------------------------------------------------------------------------------------


class _Deadline:
    """Cuts a connection that is still being read after the deadline (slow clients hold no thread)."""

    def __init__(self, seconds: float) -> None:
        self.sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        sock = self.sock
        if sock is not None:
            # The plain socket's shutdown (not SSLSocket's), so the reading thread wakes up with EOF.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _EnrollHandler(BaseHTTPRequestHandler):
    server: EnrollmentHTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection
    server_version = "f2-enroll"
    sys_version = ""

    def setup(self) -> None:
        # The socket's timeout (request_timeout) was set before the handshake and is kept.
        self._body_read = False
        super().setup()

    # http.server's own logging goes through ours, without request lines.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        log_event(logging.INFO, "enroll.http_error", client=self._client(), detail=(format % args)[:200])

    def version_string(self) -> str:
        return self.server_version

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors found by http.server (bad request line, oversized headers): JSON like the rest."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._refuse(Refusal(code, phrase.lower().replace(" ", "-"), message or phrase, f"http-{code}"))

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _send_metrics(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST

        from certs.metrics import render

        body = render(self.server.service.ca)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _client(self) -> str:
        return str(self.client_address[0]) if self.client_address else "-"

    def _dispatch(self) -> None:
        mac: str | None = None
        try:
            path = urlsplit(self.path).path
            if self.command == "GET" and path == HEALTH_PATH:
                self._send(200, {"status": "ok"})
                return
            if self.command == "GET" and path == METRICS_PATH:
                self._send_metrics()
                return
            decision = self.server.limiter.check(self._client())
            if not decision.allowed:
                assert decision.scope is not None
                raise rate_limited(decision.scope, decision.retry_after_header)
            if path != ENROLL_PATH:
                raise Refusal(404, "not-found", f"no such endpoint; enroll with POST {ENROLL_PATH}", "unknown-path")
            if self.command != "POST":
                raise Refusal(405, "method-not-allowed", f"use POST {ENROLL_PATH}", "method-not-allowed")
            body = self._read_body()
            request = parse_enroll_request(body, self.headers.get("Content-Type"))
            mac = request.mac
            started = time.monotonic()
            enrolled = self.server.service.enroll(request, self._client())
            log_event(
                logging.INFO,
                "enroll.issued",
                mac=enrolled.mac,
                serial=enrolled.serial,
                key_source=enrolled.key_source,
                reenrollment=enrolled.reenrollment,
                not_after=enrolled.not_after.isoformat(),
                client=self._client(),
                ms=round((time.monotonic() - started) * 1000),
            )
            try:
                self._send(200, enrolled.body)
            except OSError as exc:
                # Enrolled, but the device never got its certificate: it will need allow-reenroll.
                log_event(
                    logging.WARNING,
                    "enroll.undelivered",
                    mac=enrolled.mac,
                    serial=enrolled.serial,
                    client=self._client(),
                    detail=str(exc)[:200],
                    hint=f"f2 certs allow-reenroll {enrolled.mac}",
                )
        except Refusal as refusal:
            self._refuse(refusal, mac)
        except Exception:
            log.exception(
                "enroll.failed unexpected error",
                extra={"fields": {"event": "enroll.failed", "mac": mac, "client": self._client()}},
            )
            self._refuse(
                Refusal(500, "internal-error", "the enrollment failed on the server; retry later", "internal"),
                mac,
                logged=True,
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") is not None:
            raise bad_request("chunked transfer encoding is not supported; send Content-Length", "transfer-encoding")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise Refusal(411, "length-required", "send a Content-Length header", "no-content-length")
        try:
            length = int(length_header.strip())
        except ValueError as exc:
            raise bad_request("Content-Length is not a number", "bad-content-length") from exc
        if length < 0:
            raise bad_request("Content-Length is negative", "bad-content-length")
        if length > MAX_BODY_BYTES:
            raise Refusal(
                413, "payload-too-large", f"the request body exceeds {MAX_BODY_BYTES} bytes", "body-too-large"
            )
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            raise bad_request("the request body ended before Content-Length bytes", "short-body")
        self.server.request_read()
        return body

    def _drain(self) -> None:
        """Read (and drop) a refused request's body, up to _DRAIN_LIMIT bytes: closing a connection with
        unread data resets it, and the client would see the reset instead of the answer."""
        if self._body_read or getattr(self, "headers", None) is None:
            return
        self._body_read = True
        try:
            remaining = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if not 0 < remaining <= _DRAIN_LIMIT:
            return
        with contextlib.suppress(OSError):
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

    def _refuse(self, refusal: Refusal, mac: str | None = None, *, logged: bool = False) -> None:
        if not logged:
            log_event(
                logging.WARNING,
                "enroll.refused",
                status=refusal.status,
                error=refusal.error,
                reason=refusal.reason,
                mac=mac,
                client=self._client(),
            )
        headers = {"Retry-After": refusal.retry_after} if refusal.retry_after else {}
        if refusal.status == 405:
            headers["Allow"] = "POST"
        self.close_connection = True
        self._drain()
        with contextlib.suppress(OSError):  # the client went away; the refusal is logged
            self._send(refusal.status, refusal.body(), headers)

    def _send(self, status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class EnrollmentHTTPServer(ThreadingHTTPServer):
    """Accepts TCP, then does the TLS handshake in the connection's own thread, under a timeout.

    At most `max_connections` connections are served at once; more are closed without an answer.
    """

    daemon_threads = False
    block_on_close = True  # server_close() waits for enrollments in progress

    def __init__(
        self,
        address: tuple[str, int],
        *,
        service: EnrollmentService,
        limiter: RateLimiter,
        tls_context: ssl.SSLContext,
        request_timeout: float,
        max_connections: int,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        self.limiter = limiter
        self.tls_context = tls_context
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._local = threading.local()
        super().__init__(address, _EnrollHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log_event(
                logging.WARNING,
                "enroll.refused",
                reason="too-many-connections",
                client=str(client_address[0]),
            )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        deadline = _Deadline(self.request_timeout * _DEADLINE_FACTOR)
        deadline.sock = request
        self._local.deadline = deadline
        deadline.start()
        try:
            request.settimeout(self.request_timeout)
            try:
                tls = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log_event(
                    logging.INFO,
                    "enroll.tls_failed",
                    client=str(client_address[0]),
                    detail=str(exc)[:200],
                )
                return
            deadline.sock = tls
            try:
                _EnrollHandler(tls, client_address, self)
            except OSError as exc:  # the client reset or stalled; nothing to answer
                log_event(
                    logging.INFO,
                    "enroll.connection_lost",
                    client=str(client_address[0]),
                    detail=str(exc)[:200],
                )
            finally:
                tls.close()
        finally:
            deadline.cancel()
            self._local.deadline = None

    def request_read(self) -> None:
        """The request is in: from now on the server's own work must not be cut by the read deadline."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None:
            deadline.cancel()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception(
            "enroll.connection_error",
            extra={"fields": {"event": "enroll.connection_error", "client": str(client_address[0])}},
        )


class EnrollmentServer:
    """The service bound to its address: `serve_forever()`, or `start()` in a thread and `stop()`."""

    def __init__(self, http: EnrollmentHTTPServer) -> None:
        self.http = http
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.http.server_address[0])

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def serve_forever(self) -> None:
        self.http.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="f2-enroll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, wait for requests in progress, close the socket."""
        self.http.shutdown()
        self.http.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def serve_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then finish the requests in progress and return."""
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log_event(logging.INFO, "enroll.stopping", signal=signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not stop.wait(0.5):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log_event(logging.INFO, "enroll.stopped")


def build_server(
    settings: EnrollSettings,
    ca: CertificateAuthority,
    registry_dsn: DsnSource,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> EnrollmentServer:
    """Check the CA, the registry and the TLS certificate, then bind `settings.host:settings.port`."""
    if not ca.is_initialized:
        raise CANotInitializedError(f"no CA in {ca.pki_dir}: run `f2 certs init` before `f2 certs serve`")
    ca.ca_certificate()  # the key and certificate belong together
    store = EnrollmentStore(registry_dsn, connect_timeout=settings.registry_timeout_s)
    store.check_schema()
    context = server_tls_context(ca, settings)
    limiter = RateLimiter(
        settings.per_ip_rate,
        settings.per_ip_burst,
        settings.global_rate,
        settings.global_burst,
        max_clients=settings.max_tracked_clients,
        clock=clock,
    )
    service = EnrollmentService(ca, store, device_days=settings.device_days)
    try:
        http = EnrollmentHTTPServer(
            (settings.host, settings.port),
            service=service,
            limiter=limiter,
            tls_context=context,
            request_timeout=settings.request_timeout_s,
            max_connections=settings.max_connections,
        )
    except OSError as exc:
        raise EnrollmentConfigError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
            f"pick another address with --host/--port or F2_ENROLL_HOST/F2_ENROLL_PORT"
        ) from exc
    server = EnrollmentServer(http)
    log_event(
        logging.INFO,
        "enroll.listening",
        url=server.url,
        per_ip=f"{settings.per_ip_burst}+{settings.per_ip_rate}/s",
        global_limit=f"{settings.global_burst}+{settings.global_rate}/s",
    )
    return server


__all__ = [
    "EnrollmentConfigError",
    "EnrollmentServer",
    "EnrollmentService",
    "JsonLogFormatter",
    "build_server",
    "configure_logging",
    "covers_host",
    "log_event",
    "server_tls_context",
]
