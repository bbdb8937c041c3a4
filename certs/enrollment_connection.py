"""The enrollment service's connections, below HTTP: the limits uvicorn has no setting for.

uvicorn parses HTTP (its h11 protocol; `h11_max_incomplete_event_size` is the head size limit) and FastAPI
answers. Between the listening socket and uvicorn's protocol sits one `GatedConnection` per accepted
TCP connection, hand-written because uvicorn offers none of what it does:

- At most `max_connections` connections at once, counted from accept, so before the TLS handshake (the
  expensive part); more are closed at once, without an answer, and logged. uvicorn's `limit_concurrency`
  counts only connections whose handshake has finished and answers the excess with a plain-text 503.
- The TLS handshake must finish within `request_timeout_s`, and a failed one is logged (enroll.tls_failed).
  Given an SSL context, uvicorn hands it to asyncio's `create_server`, whose handshake timeout is a fixed
  60 s and which drops failed handshakes silently. So the listening socket is plain TCP and each connection
  is upgraded with `loop.start_tls`, whose handshake and shutdown timeouts can be set.
- While the request is read, each wait for its next bytes lasts at most `request_timeout_s`, and the whole
  request (handshake included) must be in within `request_deadline_s` of accept, or the connection is cut.
  uvicorn has no read timeout: its keep-alive timeout starts after a response, so a client sending one
  header byte every few seconds would hold a connection for ever. The application calls `request_read()`
  once the last byte of the body is in, so the service's own work (signing, the registry) is never cut.
- A request whose line or headers h11 cannot parse gets the service's JSON error body and a log line, like
  every other refusal, instead of uvicorn's plain-text 400; a head above the limit gets 431. h11 enforces its
  limit only on a head still incomplete, so a head that arrives whole in one read is measured here too.
- One request per connection, answered as HTTP/1.0: every response carries `Connection: close` (a default
  header of the uvicorn config), and the status line says HTTP/1.0 as it always has for this endpoint
  (http.server with protocol_version HTTP/1.0 served it before). uvicorn writes HTTP/1.1, so the status line
  of the one response is rewritten on its way out; every response carries Content-Length, so nothing in it
  needs HTTP/1.1 (h11 would only add chunked framing to a response without a length).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Final

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from certs.enrollment_log import log_event
from certs.enrollment_rules import MAX_HEAD_BYTES, Refusal

# The key under which every request's scope["state"] holds its GatedConnection (uvicorn copies the
# protocol's app_state into each request's state).
CONNECTION_STATE_KEY: Final = "f2.connection"


@dataclass
class ConnectionLimits:
    """What every connection of one server obeys, and how many are open (touched only on the event loop)."""

    tls: ssl.SSLContext
    request_timeout_s: float  # the TLS handshake, and each wait for more of the request
    request_deadline_s: float  # from accept until the request's last byte is in
    max_connections: int
    open_connections: int = 0


class _EnrollH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with the head size enforced and the service's JSON refusal and log line for a
    request it cannot take."""

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused already: what the client still sends is dropped
            return
        # h11's max_incomplete_event_size bounds a head only while it is incomplete: one that arrives whole in
        # a single read (TLS hands over up to 256 KiB at once) would be parsed whatever its size.
        if self.conn.their_state is h11.IDLE:
            pending = self.conn.trailing_data[0] + data
            end = pending.find(b"\r\n\r\n")
            if (len(pending) if end < 0 else end + 4) > self._head_limit:
                self._refuse(self._head_too_large())
                return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """Called by uvicorn when h11 cannot parse the request (`msg` is uvicorn's plain-text one)."""
        # h11 keeps the unparsed bytes: more than the limit means the head was too long, not malformed.
        if len(self.conn.trailing_data[0]) > self._head_limit:
            self._refuse(self._head_too_large())
            return
        self._refuse(
            Refusal(
                400,
                "bad-request",
                "the request is not valid HTTP/1.1 (request line, headers or Content-Length); "
                "send one POST with Content-Length and a JSON body",
                "malformed-http",
            )
        )

    @property
    def _head_limit(self) -> int:
        return self.config.h11_max_incomplete_event_size or MAX_HEAD_BYTES

    def _head_too_large(self) -> Refusal:
        return Refusal(
            431,
            "request-header-fields-too-large",
            f"the request line and headers exceed {self._head_limit} bytes",
            "head-too-large",
        )

    def _refuse(self, refusal: Refusal) -> None:
        """Answer before any request was parsed (h11 lets a server answer a malformed one), then close."""
        log_event(
            logging.WARNING,
            "enroll.refused",
            status=refusal.status,
            error=refusal.error,
            reason=refusal.reason,
            client=self.client[0] if self.client else "-",
        )
        body = json.dumps(refusal.body()).encode()
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        reason = HTTPStatus(refusal.status).phrase.encode()
        for event in (
            h11.Response(status_code=refusal.status, headers=headers, reason=reason),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()


class _OneResponseTransport(asyncio.Transport):
    """The TLS transport as uvicorn's protocol sees it: the response's status line says HTTP/1.0, and its
    first byte ends the read deadlines (whatever the application did, nothing more is read)."""

    def __init__(self, tls: asyncio.Transport, on_response: Callable[[], None]) -> None:
        super().__init__()
        self._tls = tls
        self._on_response = on_response
        self._answered = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = bytes(data[:10])
        # An interim 1xx answer (100 Continue) is left alone; the final status line is the first other one.
        if not self._answered and head.startswith(b"HTTP/1.1 ") and head[9:10] != b"1":
            self._answered = True
            self._on_response()
            data = b"HTTP/1.0 " + bytes(data[9:])
        self._tls.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._tls.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._tls.is_closing()

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls.get_protocol()

    def is_reading(self) -> bool:
        return self._tls.is_reading()

    def pause_reading(self) -> None:
        self._tls.pause_reading()

    def resume_reading(self) -> None:
        self._tls.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._tls.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._tls.get_write_buffer_limits()

    def write_eof(self) -> None:
        self._tls.write_eof()

    def can_write_eof(self) -> bool:
        return self._tls.can_write_eof()


class GatedConnection(asyncio.Protocol):
    """One accepted connection: counted, upgraded to TLS under a timeout, read under deadlines, then handed
    to uvicorn's h11 protocol (built with the same arguments uvicorn gives this class)."""

    limits: ClassVar[ConnectionLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        self._http: _EnrollH11Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._client = "-"
        self._counted = False
        self._lost = False
        self._reading = True
        # Decrypted bytes can arrive between the handshake's end and start_tls returning: kept for uvicorn.
        self._early: list[bytes] = []
        self._idle: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection: read and write
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if peer else "-"
        limits = self.limits
        if limits.open_connections >= limits.max_connections:
            log_event(logging.WARNING, "enroll.refused", reason="too-many-connections", client=self._client)
            transport.close()
            return
        limits.open_connections += 1
        self._counted = True
        self._deadline = self._loop.call_later(
            limits.request_deadline_s,
            self._expire,
            f"the request was not complete {limits.request_deadline_s:g} s after connecting",
        )
        self._handshake = self._loop.create_task(self._upgrade(transport))

    def data_received(self, data: bytes) -> None:
        if self._reading:
            self._arm_idle_timer()
        if self._http is None:
            self._early.append(data)
        else:
            self._http.data_received(data)

    def eof_received(self) -> None:
        # Returns None, like uvicorn's protocol: the transport closes its side too (TLS has no half-close).
        if self._http is not None:
            self._http.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_timers()
        if self._counted:
            self.limits.open_connections -= 1
            self._counted = False
        if self._http is not None:
            self._http.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._http is not None:
            self._http.pause_writing()

    def resume_writing(self) -> None:
        if self._http is not None:
            self._http.resume_writing()

    # -- deadlines ----------------------------------------------------------------------------------

    def request_read(self) -> None:
        """The request is in: from now on the server's own work must not be cut by the read deadlines."""
        self._reading = False
        self._stop_timers()

    def _arm_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        timeout = self.limits.request_timeout_s
        self._idle = self._loop.call_later(timeout, self._expire, f"no request bytes for {timeout:g} s")

    def _stop_timers(self) -> None:
        for timer in (self._idle, self._deadline):
            if timer is not None:
                timer.cancel()
        self._idle = self._deadline = None

    def _expire(self, why: str) -> None:
        if not self._reading or self._transport is None:
            return
        if self._http is not None:  # during the handshake, its failure is logged as enroll.tls_failed
            log_event(logging.INFO, "enroll.connection_lost", client=self._client, detail=why)
        self._transport.abort()

    # -- TLS ----------------------------------------------------------------------------------------

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        limits = self.limits
        try:
            tls = await self._loop.start_tls(
                transport,
                self,
                limits.tls,
                server_side=True,
                ssl_handshake_timeout=limits.request_timeout_s,
                ssl_shutdown_timeout=limits.request_timeout_s,
            )
        except Exception as exc:  # refused, timed out or reset: start_tls has closed the connection
            detail = str(exc)[:200] or type(exc).__name__
            log_event(logging.INFO, "enroll.tls_failed", client=self._client, detail=detail)
            return
        if tls is None or self._lost:
            return
        self._transport = tls
        self._http = _EnrollH11Protocol(
            config=self._config,
            server_state=self._server_state,
            # uvicorn copies this into every request's scope["state"]: how the application finds us.
            app_state={**self._app_state, CONNECTION_STATE_KEY: self},
            _loop=self._loop,
        )
        self._http.connection_made(_OneResponseTransport(tls, self.request_read))
        if self._reading:
            self._arm_idle_timer()
        early, self._early = self._early, []
        for data in early:
            self._http.data_received(data)


def gated_protocol(limits: ConnectionLimits) -> type[GatedConnection]:
    """The protocol class to give uvicorn as `http`: it builds one per accepted connection."""

    class BoundGatedConnection(GatedConnection):
        pass

    BoundGatedConnection.limits = limits
    return BoundGatedConnection


__all__ = ["CONNECTION_STATE_KEY", "ConnectionLimits", "GatedConnection", "gated_protocol"]
