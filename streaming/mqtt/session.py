"""A persistent MQTT v5 subscriber session on a non-blocking socket, driven from its owner's loop.

No network thread: the owner calls `poll()` (connects, keeps alive, reads and decodes whatever arrived) and
`flush()` (writes the due PUBACKs and anything else queued in one send) from its own thread, so the socket,
the decoder and the Kafka producer never compete for the GIL.

Acknowledgements are manual. `ack(connection, packet_id)` marks a QoS 1 message as safe; `flush()` then
sends the PUBACKs of the longest run of safe messages in the order they arrived (MQTT requires PUBACKs in
PUBLISH order). Every accepted connection gets a new number and an ack of an earlier connection's message
is dropped: after a reconnect the broker redelivers those messages itself.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from streaming.errors import MqttProtocolError
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


class State(Enum):
    WAITING = "waiting to connect"
    CONNECTING = "TCP connecting"
    HANDSHAKE = "waiting for CONNACK"
    CONNECTED = "connected"
    CLOSED = "closed"


class MqttSession:
    def __init__(
        self,
        options: SessionOptions,
        on_connection: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._on_connection = on_connection
        self._clock = clock
        self.state = State.WAITING
        self.connection = 0  # number of the current (or last) accepted connection
        self._sock: socket.socket | None = None
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
        if state is State.CLOSED:
            return []
        if state is State.HANDSHAKE and now > self._deadline:
            self._lost(f"no CONNACK within {self.options.connect_timeout_s:g} s")
            return []
        if state is State.CONNECTED:
            self._keep_alive(now)
            if not read or self._sock is None:
                return []
        assert self._sock is not None
        readable, _, _ = select.select([self._sock], [], [], timeout)
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
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"send failed: {exc}")
            return
        del self._out[:sent]
        self._last_sent = self._clock()

    def close(self, timeout: float = 2.0) -> None:
        """Send the due PUBACKs and DISCONNECT (the session stays on the broker), then close the socket."""
        if self.state is State.CONNECTED and self._sock is not None:
            self.flush()
            self._out += disconnect_packet()
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
        # clean_start=False resumes the session and its queued, unacknowledged messages after a restart.
        self._out += connect_packet(
            opts.client_id,
            opts.username,
            opts.password,
            keepalive_s=opts.keepalive_s,
            clean_start=False,
            session_expiry_s=opts.session_expiry_s,
            receive_maximum=opts.receive_maximum,
        )
        self.state = State.HANDSHAKE
        self._deadline = self._clock() + opts.connect_timeout_s
        self._last_received = self._clock()
        self.flush()

    def _read(self) -> list[Publish]:
        assert self._sock is not None
        try:
            data = self._sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
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
            log.error("MQTT connection refused: %s%s", reason_name(ack.reason_code), detail)
            self._lost(None)
            return
        self.state = State.CONNECTED
        self.connection += 1
        self._backoff = opts.reconnect_min_s
        self._keepalive = ack.server_keep_alive if ack.server_keep_alive is not None else opts.keepalive_s
        log.info("connected to MQTT %s:%d (session present: %s)", opts.host, opts.port, ack.session_present)
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
            self._lost(None)
        else:
            for topic_filter, code in zip(self.options.topic_filters, ack.reason_codes, strict=True):
                if code < self.options.qos:
                    log.warning("MQTT subscription to %s granted only QoS %d", topic_filter, code)
            log.info("subscribed to %s", ", ".join(self.options.topic_filters))

    def _keep_alive(self, now: float) -> None:
        keepalive = self._keepalive
        if keepalive and (now - self._last_sent >= keepalive or now - self._last_received >= keepalive):
            if self._ping_sent_at is None:
                self._ping_sent_at = now
            self._out += PINGREQ_PACKET
            self._last_sent = now  # counted as sent once queued: at most one PINGREQ per keep-alive period
            self.flush()

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
