"""The enrollment service behind `f2 certs serve`: HTTPS (TLS 1.2+), one endpoint.

    POST /v1/enroll   {"mac", "claiming_code", "csr"}  or  {"mac", "claiming_code", "generate_key": true}
      200 {"certificate": PEM, "ca_certificate": PEM, "serial": hex, "not_after": ISO 8601,
           "private_key": PEM (only with generate_key)}
      400 malformed request (the message says what), 411 no Content-Length, 413 body too large,
      403 unknown MAC or wrong claiming code (one answer for both), 409 already enrolled,
      429 too many requests (Retry-After), 503 registry unavailable, 500 anything else;
      404 another path, 405 another method (Allow: POST), 501 a method outside GET/HEAD/POST/PUT/DELETE/PATCH,
      431 a request line and headers above MAX_HEAD_BYTES
      every error body: {"error": <code>, "message": <text>}
    GET /healthz      200 {"status": "ok"} (not rate limited, touches nothing)
    GET /metrics      certificate and CRL expiry for Prometheus (not rate limited)

A controller is a row of "VtDevice".devices with that macaddress; its claimingcode must match. Each
code enrolls once ("VtDevice".f2_enrollments); `f2 certs allow-reenroll <mac>` permits one more.
Every request except GET /healthz and GET /metrics takes a token from its client IP's bucket and from the
global one, before its path is looked at. Every refusal is logged as one structured line (logger f2.enroll);
claiming codes, CSRs, keys and request bodies are never logged. The client IP is the TCP peer:
X-Forwarded-For is not trusted (uvicorn's proxy_headers is off). One request per connection.

The application is FastAPI (routes, responses, exception handlers), served by uvicorn's h11 protocol in a
thread of its own, which owns the event loop; enrollments themselves (registry, signing) run in the
threadpool. uvicorn's own settings carry what they can: the head size (`h11_max_incomplete_event_size`),
the default headers (Server: f2-enroll, Date, Connection: close), no access log. Hand-written, and why:

- `certs/enrollment_connection.py`: TLS, the connection cap, the handshake timeout and the read deadlines
  against slow clients, which uvicorn has no settings for (see there).
- `_RequestGuard`, a small ASGI middleware: rate limiting and the 501 for unknown methods come before
  routing (a FastAPI dependency runs after it, so probing unknown paths would cost no token), and an
  unexpected exception becomes the JSON 500 and one log line (FastAPI's catch-all handler re-raises it to
  uvicorn, which would log it again).
- The body limit is decided from the headers by the pure rules (`body_length`) before a byte is read.
  FastAPI's `max_body_size` would do it, but answers with its own plain-text 413 (it replaces any response
  started while Content-Length is over the limit), and every answer here is the JSON error body.
- A refused request's body is read and dropped (up to _DRAIN_LIMIT) before the answer: closing a
  connection with unread data resets it, and the client would see the reset instead of the answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import Final

import psycopg
import uvicorn
from cryptography import x509
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from certs.authority import CertificateAuthority
from certs.enrollment_connection import CONNECTION_STATE_KEY, ConnectionLimits, GatedConnection, gated_protocol
from certs.enrollment_log import JsonLogFormatter, configure_logging, log, log_event
from certs.enrollment_rules import (
    ENROLL_PATH,
    HEALTH_PATH,
    MAX_HEAD_BYTES,
    METRICS_PATH,
    EnrollRequest,
    Refusal,
    bad_request,
    body_length,
    check_claim,
    check_enrollable,
    parse_enroll_request,
    rate_limited,
)
from certs.enrollment_store import DsnSource, EnrollmentStore, RegistryUnavailableError
from certs.errors import CANotInitializedError, CertsError, CSRError
from certs.metrics import render
from certs.rate_limit import RateLimiter
from certs.settings import EnrollSettings

# A connection must deliver its whole request within this many request timeouts, even if it keeps
# trickling bytes.
_DEADLINE_FACTOR: Final = 3
_UNAVAILABLE_RETRY_S: Final = "30"
# A refused request's body is read up to this size so the client gets the answer (see _drain).
_DRAIN_LIMIT: Final = 1024 * 1024
# The methods routed at all (those http.server dispatched before); any other gets 501.
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})
_UNLIMITED: Final = frozenset({HEALTH_PATH, METRICS_PATH})
_PROGRESS_KEY: Final = "f2.request"


class EnrollmentConfigError(CertsError):
    """The enrollment service cannot start: no CA, no usable TLS certificate, registry not migrated."""


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


# -- HTTP: the FastAPI application --------------------------------------------------------------


@dataclass
class _Progress:
    """One request as far as it has come (kept in scope["state"]): is its body all read, which MAC it names."""

    connection: GatedConnection | None
    body_complete: bool = False
    mac: str | None = None

    def body_read(self) -> None:
        if not self.body_complete:
            self.body_complete = True
            if self.connection is not None:
                self.connection.request_read()


def _progress(scope: Scope) -> _Progress:
    progress = scope["state"][_PROGRESS_KEY]
    assert isinstance(progress, _Progress)
    return progress


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _json(status: int, body: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Response:
    # json.dumps with its default separators: the bytes every client has seen from this endpoint.
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


async def _drain(request: Request) -> None:
    """Read (and drop) a refused request's body, up to _DRAIN_LIMIT bytes: closing a connection with
    unread data resets it, and the client would see the reset instead of the answer."""
    progress = _progress(request.scope)
    declared = request.headers.get("content-length")
    try:
        remaining = int(declared) if declared is not None else _DRAIN_LIMIT
    except ValueError:
        return
    if not 0 < remaining <= _DRAIN_LIMIT:
        return
    read = 0
    # The guard's receive marks the body read at its last chunk or at a disconnect; the connection's
    # read deadlines still run, so a client that stops sending cannot hold this loop.
    while not progress.body_complete and read <= _DRAIN_LIMIT:
        message = await request.receive()
        read += len(message.get("body", b""))


async def refusal_response(request: Request, refusal: Refusal, *, logged: bool = False) -> Response:
    """Log the refusal (unless done already), drain the body, and answer with the JSON error body."""
    progress = _progress(request.scope)
    if not logged:
        log_event(
            logging.WARNING,
            "enroll.refused",
            status=refusal.status,
            error=refusal.error,
            reason=refusal.reason,
            mac=progress.mac,
            client=_client(request.scope),
        )
    headers = {"Retry-After": refusal.retry_after} if refusal.retry_after else {}
    if refusal.status == 405:
        headers["Allow"] = "POST"
    await _drain(request)
    return _json(refusal.status, refusal.body(), headers)


class _RequestGuard:
    """What comes before routing: per-request progress, 501 for unknown methods, the rate limits, and the
    JSON 500 for an exception nothing else handled (module docstring: why a middleware)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        progress = _Progress(state.get(CONNECTION_STATE_KEY))
        state[_PROGRESS_KEY] = progress
        if not _has_body(scope):
            progress.body_read()

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                progress.body_read()
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        request = Request(scope, tracked_receive)
        try:
            self._admit(scope)
        except Refusal as refusal:
            response = await refusal_response(request, refusal)
            await response(scope, tracked_receive, tracked_send)
            return
        try:
            await self.app(scope, tracked_receive, tracked_send)
        except Exception:
            log.exception(
                "enroll.failed unexpected error",
                extra={"fields": {"event": "enroll.failed", "mac": progress.mac, "client": _client(scope)}},
            )
            if not started:
                failure = Refusal(500, "internal-error", "the enrollment failed on the server; retry later", "internal")
                response = await refusal_response(request, failure, logged=True)
                await response(scope, tracked_receive, tracked_send)

    def _admit(self, scope: Scope) -> None:
        method = scope["method"]
        if method not in _METHODS:
            raise Refusal(
                501, "not-implemented", f"method {method} is not supported; enroll with POST {ENROLL_PATH}", "http-501"
            )
        if method == "GET" and scope["path"] in _UNLIMITED:
            return
        decision = self.limiter.check(_client(scope))
        if not decision.allowed:
            assert decision.scope is not None
            raise rate_limited(decision.scope, decision.retry_after_header)


async def _read_body(request: Request) -> bytes:
    length = body_length(request.headers.get("content-length"), request.headers.get("transfer-encoding"))
    body = bytearray()
    with contextlib.suppress(ClientDisconnect):  # a short body is refused below
        async for chunk in request.stream():
            body += chunk
    if len(body) != length:
        raise bad_request("the request body ended before Content-Length bytes", "short-body")
    return bytes(body)


def create_app(service: EnrollmentService, limiter: RateLimiter) -> FastAPI:
    """The enrollment endpoint, /healthz and /metrics; no OpenAPI or docs pages, no telemetry export."""
    app = FastAPI(
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # /healthz/ is another path (404), as it always was, not a redirect
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.add_middleware(_RequestGuard, limiter=limiter)

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return await refusal_response(request, exc)

    @app.exception_handler(HTTPException)
    async def not_routed(request: Request, exc: Exception) -> Response:
        """The router's 404 and 405 in the service's words: 405 only for the enrollment path itself."""
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405):
            if request.scope["path"] == ENROLL_PATH:
                refusal = Refusal(405, "method-not-allowed", f"use POST {ENROLL_PATH}", "method-not-allowed")
            else:
                refusal = Refusal(404, "not-found", f"no such endpoint; enroll with POST {ENROLL_PATH}", "unknown-path")
        else:
            code = exc.status_code
            refusal = Refusal(code, HTTPStatus(code).phrase.lower().replace(" ", "-"), str(exc.detail), f"http-{code}")
        return await refusal_response(request, refusal)

    @app.get(HEALTH_PATH)
    async def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get(METRICS_PATH)
    def metrics() -> Response:  # reads the PKI's files: FastAPI runs it in the threadpool
        return Response(render(service.ca), media_type=CONTENT_TYPE_LATEST)

    @app.post(ENROLL_PATH)
    async def enroll(request: Request) -> Response:
        progress = _progress(request.scope)
        client = _client(request.scope)
        body = await _read_body(request)
        enroll_request = parse_enroll_request(body, request.headers.get("content-type"))
        progress.mac = enroll_request.mac
        started = time.monotonic()
        enrolled = await run_in_threadpool(service.enroll, enroll_request, client)
        log_event(
            logging.INFO,
            "enroll.issued",
            mac=enrolled.mac,
            serial=enrolled.serial,
            key_source=enrolled.key_source,
            reenrollment=enrolled.reenrollment,
            not_after=enrolled.not_after.isoformat(),
            client=client,
            ms=round((time.monotonic() - started) * 1000),
        )
        if await request.is_disconnected():
            # Enrolled, but the device will not get its certificate: it will need allow-reenroll.
            log_event(
                logging.WARNING,
                "enroll.undelivered",
                mac=enrolled.mac,
                serial=enrolled.serial,
                client=client,
                detail="the client closed the connection before the answer",
                hint=f"f2 certs allow-reenroll {enrolled.mac}",
            )
        return _json(200, enrolled.body)

    return app


# -- the server ---------------------------------------------------------------------------------


class EnrollmentServer:
    """The service bound to its address: `start()` serves in a thread until `stop()`."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        address = sock.getsockname()
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread; returns once connections are accepted."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="f2-enroll", daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise EnrollmentConfigError("the enrollment service stopped while starting; its log says why")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop accepting, let the requests in progress finish, close the socket."""
        if self._thread is None:
            self._sock.close()
            return
        self._server.should_exit = True
        self._thread.join()
        self._thread = None

    def serve_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then finish the requests in progress and return."""
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log_event(logging.INFO, "enroll.stopping", signal=signal.Signals(signum).name)
            stop.set()

        # Our handlers, not uvicorn's: it serves in another thread, where it installs none (uvicorn's
        # would re-raise the signal after shutting down, and the process would end by it, not with 0).
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


def _listen(host: str, port: int) -> socket.socket:
    # Bound here, not by uvicorn, so a busy port is reported with the fix before anything starts (uvicorn
    # would log and exit the process) and port 0 is known at once.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


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
    store = EnrollmentStore(registry_dsn, connect_timeout=settings.registry_timeout_s, schema=settings.registry_schema)
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
    limits = ConnectionLimits(
        tls=context,
        request_timeout_s=settings.request_timeout_s,
        request_deadline_s=settings.request_timeout_s * _DEADLINE_FACTOR,
        max_connections=settings.max_connections,
    )
    config = uvicorn.Config(
        create_app(service, limiter),
        http=gated_protocol(limits),  # TLS is done per connection there (enrollment_connection.py)
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_config=None,  # the process's logging (JSON lines) stays as it is
        access_log=False,  # every refusal and enrollment is logged by the service itself
        proxy_headers=False,  # the client is the TCP peer; X-Forwarded-For is not trusted
        server_header=False,
        headers=[("Server", "f2-enroll"), ("Connection", "close")],
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        # Never reached while every response closes its connection; a keep-alive connection would get the
        # same time as any other wait for a request.
        timeout_keep_alive=max(1, round(settings.request_timeout_s)),
    )
    config.load()
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        raise EnrollmentConfigError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
            f"pick another address with --host/--port or F2_ENROLL_HOST/F2_ENROLL_PORT"
        ) from exc
    server = EnrollmentServer(uvicorn.Server(config), sock)
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
    "create_app",
    "log_event",
    "server_tls_context",
]
