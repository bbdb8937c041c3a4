"""A persistent MQTT v5 subscriber session on a non-blocking socket, driven from its owner's loop.

No network thread: the owner calls `poll()` (connects, keeps alive, reads and decodes whatever arrived) and
`flush()` (writes the due PUBACKs and anything else queued in one send) from its own thread, so the socket,
the decoder and the Kafka producer never compete for the GIL.

Acknowledgements are manual. `ack(connection, packet_id)` marks a QoS 1 message as safe; `flush()` then
sends the PUBACKs of the longest run of safe messages in the order they arrived (MQTT requires PUBACKs in
PUBLISH order). Every accepted connection gets a new number and an ack of an earlier connection's message
is dropped: after a reconnect the broker redelivers those messages itself.

With `SessionOptions.tls` the connection is TLS, driven as non-blocking as the rest: the handshake advances a
step on each poll (OpenSSL says whether it waits to read or to write), and a read returns what the TLS layer
has decrypted, which select() cannot see. A refusal that retrying cannot cure (bad credentials, not
authorized, a broker certificate that fails verification, a client certificate the broker rejects, a
subscription the ACL refuses) raises MqttRefusedError naming the setting to fix instead of reconnecting.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from streaming.errors import MqttProtocolError, MqttRefusedError
from streaming.mqtt.wire import (
    PINGREQ_PACKET,
    ConnAck,
    Disconnect,
    PingResp,
    Publish,
    SubAck,
    connect_packet,
    decode_packets,
    disconnect_packet,
    puback_packets,
    reason_name,
    subscribe_packet,
)

log = logging.getLogger("f2.mqtt")

RECV_BYTES = 256 * 1024
_SUBSCRIBE_ID = 1  # the only packet id this client ever sends (it never publishes)

# CONNACK reason codes that no reconnect can change (v5 3.2.2.2), with what to fix; others are retried.
_CONNECT_REFUSALS: dict[int, tuple[str, str]] = {
    0x84: ("unsupported-protocol", "the broker does not speak MQTT v5 (Mosquitto 1.6 or later does)"),
    0x85: ("client-id", "the broker refuses the client id: check F2_BRIDGE_CLIENT_ID"),
    0x86: ("bad-credentials", "check F2_MQTT_USERNAME and F2_MQTT_PASSWORD against the broker's password file"),
    0x87: (
        "not-authorized",
        "the broker does not let this account connect: check F2_MQTT_USERNAME and F2_MQTT_PASSWORD, or with a "
        "client certificate (F2_MQTT_TLS_CERT) that its CN is an account the broker knows",
    ),
    0x8A: ("banned", "the broker has banned this client"),
    0x8C: ("bad-authentication-method", "the broker wants another authentication method than a password"),
}
# SUBACK reason codes that mean the subscription can never be granted as asked.
_SUBSCRIBE_REFUSALS: dict[int, tuple[str, str]] = {
    0x87: ("subscribe-not-authorized", "the broker's ACL does not let this account read the topic"),
    0x8F: ("subscribe-filter-invalid", "the broker rejects the topic filter"),
    0x9E: ("subscribe-shared-unsupported", "the broker does not support shared subscriptions"),
    0xA2: ("subscribe-wildcard-unsupported", "the broker does not support wildcard subscriptions"),
}
# TLS alerts a broker sends about the client's certificate (OpenSSL's reason names).
_CLIENT_CERT_ALERTS = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)


@dataclass(frozen=True)
class SessionOptions:
    host: str
    port: int
    client_id: str
    username: str | None
    password: str | None
    keepalive_s: int
    session_expiry_s: int
    receive_maximum: int
    topic_filters: tuple[str, ...]
    qos: int = 1
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 10.0
    connect_timeout_s: float = 10.0
    tls: ssl.SSLContext | None = None  # TLS towards `host` (whose certificate must name it), or in clear
    maximum_packet_size: int | None = None  # announced in CONNECT: the broker sends nothing larger


class State(Enum):
    WAITING = "waiting to connect"
    CONNECTING = "TCP connecting"
    TLS_HANDSHAKE = "TLS handshake"
    HANDSHAKE = "waiting for CONNACK"
    CONNECTED = "connected"
    CLOSED = "closed"


class MqttSession:
    def __init__(
        self,
        options: SessionOptions,
        on_connection: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_session_lost: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self._on_connection = on_connection
        self._on_session_lost = on_session_lost
        self.sessions_lost = 0  # reconnects on which the broker had not kept the session
        self._clock = clock
        self.state = State.WAITING
        self.connection = 0  # number of the current (or last) accepted connection
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._retry_at = 0.0
        self._backoff = options.reconnect_min_s
        self._deadline = 0.0  # of the TCP connect or the CONNACK
        self._keepalive = options.keepalive_s
        self._last_sent = 0.0
        self._last_received = 0.0
        self._ping_sent_at: float | None = None  # the oldest PINGREQ without PINGRESP
        self._partial = b""  # the start of a packet whose end has not arrived yet
        self._out = bytearray()
        self._unacked: deque[int] = deque()  # QoS 1 packet ids of this connection, in arrival order
        self._safe = bytearray(65536)  # 1 where ack() marked a packet id of this connection

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    @property
    def unsent(self) -> int:
        """Bytes queued for the broker that the socket has not taken yet (a partial write's rest)."""
        return len(self._out)

    # --- driving ------------------------------------------------------------------------------------------
    def poll(self, timeout: float, read: bool = True) -> list[Publish]:
        """Advance the connection; with `read`, wait up to `timeout` for data and return the PUBLISHes in it.

        `read=False` (backpressure) leaves the socket unread, so the broker holds further messages; a
        connected session still keeps alive, a lost one waits for reading to resume to reconnect."""
        now = self._clock()
        state = self.state
        if not read and state is not State.CONNECTED:
            return []
        if state is State.WAITING:
            if now < self._retry_at:
                time.sleep(max(0.0, min(timeout, self._retry_at - now)))
                return []
            self._start_connect(now)
            return []
        if state is State.CONNECTING:
            self._finish_connect(timeout, now)
            return []
        if state is State.TLS_HANDSHAKE:
            self._tls_handshake(timeout, now)
            return []
        if state is State.CLOSED:
            return []
        if state is State.HANDSHAKE and now > self._deadline:
            self._lost(f"no CONNACK within {self.options.connect_timeout_s:g} s")
            return []
        if state is State.CONNECTED:
            self._keep_alive(now)
            if not read or self._sock is None:
                return []
        sock = self._sock
        assert sock is not None
        # Bytes the TLS layer already decrypted are invisible to select().
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return self._read()
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            ping = self._ping_sent_at
            # Only with nothing left to read is a missing PINGRESP proof of a dead link.
            if ping is not None and self._last_received < ping and now - ping >= self._keepalive:
                self._lost(f"no PINGRESP within {self._keepalive} s")
            return []
        return self._read()

    def ack(self, connection: int, packet_id: int) -> None:
        """Mark a QoS 1 message safe to acknowledge (its record is durable); `flush()` sends the PUBACK."""
        if connection == self.connection and self.state is State.CONNECTED:
            self._safe[packet_id] = 1

    def flush(self) -> None:
        """Send the due PUBACKs and any queued packet, as one write."""
        if self.state is not State.CONNECTED and self.state is not State.HANDSHAKE:
            return
        unacked, safe = self._unacked, self._safe
        if unacked and safe[unacked[0]]:
            due = []
            while unacked and safe[unacked[0]]:
                pid = unacked.popleft()
                safe[pid] = 0
                due.append(pid)
            self._out += puback_packets(due)
        if not self._out:
            return
        assert self._sock is not None
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            # TLS: OpenSSL keeps what it took of `_out`; the next send passes the same bytes again (and more).
            return
        except OSError as exc:
            self._lost(f"send failed: {exc}")
            return
        del self._out[:sent]
        self._last_sent = self._clock()

    def close(self, timeout: float = 2.0, end_session: bool = False) -> None:
        """Send the due PUBACKs and DISCONNECT, then close the socket. The session stays on the broker unless
        `end_session`: then the DISCONNECT sets its expiry to 0 and the broker discards it with whatever it
        still holds for it."""
        if self.state is State.CONNECTED and self._sock is not None:
            self.flush()
            self._out += disconnect_packet(session_expiry_s=0 if end_session else None)
            try:
                self._sock.settimeout(timeout)
                self._sock.sendall(self._out)
            except OSError as exc:
                log.warning("MQTT: could not send the last acknowledgements and DISCONNECT: %s", exc)
        self._drop_socket()
        self.state = State.CLOSED
        self._set_connected(False)

    # --- connection ---------------------------------------------------------------------------------------
    def _start_connect(self, now: float) -> None:
        opts = self.options
        try:
            family, kind, proto, _, address = socket.getaddrinfo(opts.host, opts.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            self._lost(f"cannot reach {opts.host}:{opts.port}: {exc}")
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._lost(f"connect to {opts.host}:{opts.port} failed: {errno.errorcode.get(code, code)}")
            return
        self.state = State.CONNECTING
        self._deadline = now + opts.connect_timeout_s

    def _finish_connect(self, timeout: float, now: float) -> None:
        assert self._sock is not None
        _, writable, _ = select.select([], [self._sock], [], timeout)
        opts = self.options
        if not writable:
            if now > self._deadline:
                self._lost(f"connect to {opts.host}:{opts.port} timed out")
            return
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._lost(f"connect to {opts.host}:{opts.port} failed: {errno.errorcode.get(code, code)}")
            return
        if opts.tls is not None:
            assert isinstance(self._sock, socket.socket)
            self._sock = opts.tls.wrap_socket(self._sock, server_hostname=opts.host, do_handshake_on_connect=False)
            self.state = State.TLS_HANDSHAKE
            self._deadline = self._clock() + opts.connect_timeout_s
            self._tls_handshake(0.0, now)
            return
        self._send_connect()

    def _tls_handshake(self, timeout: float, now: float) -> None:
        """One step of the TLS handshake; waits up to `timeout` for the socket when OpenSSL needs it."""
        sock = self._sock
        assert isinstance(sock, ssl.SSLSocket)
        opts = self.options
        for attempt in (0, 1):
            try:
                sock.do_handshake()
            except ssl.SSLWantReadError:
                wait: tuple[list[ssl.SSLSocket], list[ssl.SSLSocket]] = ([sock], [])
            except ssl.SSLWantWriteError:
                wait = ([], [sock])
            except ssl.SSLCertVerificationError as exc:
                self._refuse(
                    "tls-server-certificate",
                    f"the MQTT broker's certificate at {opts.host}:{opts.port} failed verification "
                    f"({exc.verify_message}): F2_CA_CERT must name the CA that signed it, and the certificate "
                    f"must name {opts.host} (F2_MQTT_HOST)",
                )
            except (ssl.SSLError, OSError) as exc:
                self._tls_failed(exc, "TLS handshake")
                return
            else:
                self._send_connect()
                return
            if attempt or now > self._deadline:
                break
            if not any(select.select(*wait, [], timeout)[:2]):
                break
        if now > self._deadline:
            self._lost(f"TLS handshake with {opts.host}:{opts.port} timed out")

    def _tls_failed(self, exc: OSError, during: str) -> None:
        """A TLS error: a refusal when the broker rejected our certificate, else a lost connection."""
        if isinstance(exc, ssl.SSLError) and exc.reason in _CLIENT_CERT_ALERTS:
            self._refuse(
                "tls-client-certificate",
                f"the MQTT broker rejected the client certificate ({exc.reason}): F2_MQTT_TLS_CERT and "
                "F2_MQTT_TLS_KEY must hold a current certificate (and its key) issued by the CA the broker "
                "trusts, or set them when the listener requires one",
            )
        self._lost(f"{during} failed: {exc}")

    def _send_connect(self) -> None:
        opts = self.options
        # clean_start=False resumes the session and its queued, unacknowledged messages after a restart.
        self._out += connect_packet(
            opts.client_id,
            opts.username,
            opts.password,
            keepalive_s=opts.keepalive_s,
            clean_start=False,
            session_expiry_s=opts.session_expiry_s,
            receive_maximum=opts.receive_maximum,
            maximum_packet_size=opts.maximum_packet_size,
        )
        self.state = State.HANDSHAKE
        self._deadline = self._clock() + opts.connect_timeout_s
        self._last_received = self._clock()
        self.flush()

    def _read(self) -> list[Publish]:
        sock = self._sock
        assert sock is not None
        try:
            data = sock.recv(RECV_BYTES)
            if isinstance(sock, ssl.SSLSocket):
                # One TLS record per recv: take what else is decrypted, as one read of a plain socket would.
                while sock.pending() and len(data) < RECV_BYTES:
                    data += sock.recv(RECV_BYTES - len(data))
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return []
        except ssl.SSLZeroReturnError:
            data = b""
        except OSError as exc:
            if isinstance(exc, ssl.SSLError):
                self._tls_failed(exc, "receive")
            else:
                self._lost(f"receive failed: {exc}")
            return []
        if not data:
            self._lost("the broker closed the connection")
            return []
        self._last_received = self._clock()
        buf = self._partial + data if self._partial else data
        try:
            packets, used = decode_packets(buf)
        except MqttProtocolError as exc:
            self._lost(str(exc))
            return []
        self._partial = buf[used:]
        publishes: list[Publish] = []
        take, expect_ack = publishes.append, self._unacked.append
        connected = self.state is State.CONNECTED
        for packet in packets:
            if isinstance(packet, Publish):
                if not connected:
                    self._lost("the broker sent PUBLISH before CONNACK")
                    break
                if packet.qos:
                    if packet.qos > self.options.qos:
                        self._lost(
                            f"the broker sent a QoS {packet.qos} PUBLISH on a QoS {self.options.qos} subscription"
                        )
                        break
                    expect_ack(packet.packet_id)
                take(packet)
            else:
                self._control(packet)
                connected = self.state is State.CONNECTED
                if self.state is not State.HANDSHAKE and not connected:
                    break
        # Even when the connection was lost meanwhile, what arrived is forwarded (its acks are dropped).
        return publishes

    def _control(self, packet: ConnAck | SubAck | PingResp | Disconnect) -> None:
        if isinstance(packet, PingResp):
            self._ping_sent_at = None
        elif isinstance(packet, SubAck):
            self._on_suback(packet)
        elif isinstance(packet, ConnAck):
            self._on_connack(packet)
        else:
            detail = f": {packet.reason_string}" if packet.reason_string else ""
            self._lost(f"the broker disconnected: {reason_name(packet.reason_code)}{detail}")

    def _on_connack(self, ack: ConnAck) -> None:
        opts = self.options
        if self.state is not State.HANDSHAKE:
            self._lost("the broker sent a second CONNACK")
            return
        if ack.reason_code != 0:
            detail = f": {ack.reason_string}" if ack.reason_string else ""
            refusal = _CONNECT_REFUSALS.get(ack.reason_code)
            if refusal is not None:
                label, fix = refusal
                who = f"user {opts.username!r}" if opts.username else "the client certificate's CN"
                self._refuse(
                    label,
                    f"the MQTT broker {opts.host}:{opts.port} refused the connection as {who}: "
                    f"{reason_name(ack.reason_code)}{detail}; {fix}",
                )
            log.error("MQTT connection refused: %s%s", reason_name(ack.reason_code), detail)
            self._lost(None)
            return
        self.state = State.CONNECTED
        resumed_expected = self.connection > 0 and opts.session_expiry_s > 0
        self.connection += 1
        self._backoff = opts.reconnect_min_s
        self._keepalive = ack.server_keep_alive if ack.server_keep_alive is not None else opts.keepalive_s
        log.info("connected to MQTT %s:%d (session present: %s)", opts.host, opts.port, ack.session_present)
        if resumed_expected and not ack.session_present:
            # The broker lost (or expired) the session: what it had queued for this client and not yet
            # delivered is gone with it, unless it was saved (docs/guarantees.md, the Mosquitto crash window).
            self.sessions_lost += 1
            log.warning(
                "MQTT: the broker did not resume session %r (session present false on a reconnect): messages "
                "it held for this client may be lost; subscribing anew",
                opts.client_id,
            )
            if self._on_session_lost is not None:
                self._on_session_lost()
        # Subscribing on every connect also repairs a session the broker lost.
        self._out += subscribe_packet(_SUBSCRIBE_ID, opts.topic_filters, opts.qos)
        self._set_connected(True)

    def _on_suback(self, ack: SubAck) -> None:
        refused = [(f, c) for f, c in zip(self.options.topic_filters, ack.reason_codes, strict=False) if c >= 0x80]
        if ack.packet_id != _SUBSCRIBE_ID or len(ack.reason_codes) != len(self.options.topic_filters):
            self._lost(f"unexpected SUBACK (packet id {ack.packet_id}, {len(ack.reason_codes)} reason codes)")
        elif refused:
            for topic_filter, code in refused:
                log.error("MQTT subscription to %s refused: %s", topic_filter, reason_name(code))
            for topic_filter, code in refused:
                refusal = _SUBSCRIBE_REFUSALS.get(code)
                if refusal is not None:
                    who = self.options.username or "the client certificate's CN"
                    self._refuse(
                        refusal[0],
                        f"the MQTT broker refused the subscription to {topic_filter} for {who}: "
                        f"{reason_name(code)}; {refusal[1]}",
                    )
            self._lost(None)
        else:
            for topic_filter, code in zip(self.options.topic_filters, ack.reason_codes, strict=True):
                if code < self.options.qos:
                    log.warning("MQTT subscription to %s granted only QoS %d", topic_filter, code)
            log.info("subscribed to %s", ", ".join(self.options.topic_filters))

    def _keep_alive(self, now: float) -> None:
        keepalive = self._keepalive
        if not keepalive:
            return
        # A quiet broker is asked once per period; a PINGREQ already waiting for its PINGRESP is not repeated
        # on every poll (only the client's own silence towards the broker calls for another one).
        silent = now - self._last_received >= keepalive and self._ping_sent_at is None
        if now - self._last_sent >= keepalive or silent:
            if self._ping_sent_at is None:
                self._ping_sent_at = now
            self._out += PINGREQ_PACKET
            self._last_sent = now  # counted as sent once queued: at most one PINGREQ per keep-alive period
            self.flush()

    def _refuse(self, label: str, message: str) -> None:
        """End the session for good: the same attempt would be refused again."""
        log.error("MQTT: %s", message)
        self._drop_socket()
        self.state = State.CLOSED
        self._set_connected(False)
        raise MqttRefusedError(message, label)

    def _lost(self, reason: str | None) -> None:
        """Drop the connection (reason logged unless None) and schedule the next attempt with backoff."""
        if reason is not None:
            log.warning("MQTT disconnected (%s); reconnecting in %g s", reason, self._backoff)
        self._drop_socket()
        self.state = State.WAITING
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self.options.reconnect_max_s)
        self._set_connected(False)

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._partial = b""
        self._out.clear()
        self._unacked.clear()
        self._safe = bytearray(65536)
        self._ping_sent_at = None
        self._keepalive = self.options.keepalive_s

    def _set_connected(self, connected: bool) -> None:
        if self._on_connection is not None:
            self._on_connection(connected)
