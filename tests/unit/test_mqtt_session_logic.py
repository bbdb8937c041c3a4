"""The MQTT session's protocol logic with its injected clock: keep alive, PINGRESP timeout, partial writes,
DISCONNECT, sessions the broker did not keep, refusals, the CONNECT's Maximum Packet Size.

The session talks over a real loopback TCP connection to a peer that plays the broker's side with bytes written
out by hand from the MQTT v5 specification: what these tests check is the client's protocol logic (timers,
ordering, reactions), not a broker's behaviour, which tests/integration/test_mqtt_session.py and
test_mqtt_tls.py check against Mosquitto itself.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from streaming.errors import MqttRefusedError
from streaming.mqtt.session import MqttSession, SessionOptions, State

KEEPALIVE = 10


def h(text: str) -> bytes:
    return bytes.fromhex(text)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Peer:
    """The broker's end: a listening socket on loopback, and the connections the session makes to it."""

    def __init__(self, rcvbuf: int | None = None) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # inherited by accepted connections
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 5.0) -> None:
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(5.0)

    def nothing_to_accept(self) -> bool:
        self.listener.settimeout(0.3)
        try:
            extra, _ = self.listener.accept()
        except TimeoutError:
            return True
        extra.close()
        return False

    def _exact(self, n: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            assert chunk, "the session closed the connection"
            data += chunk
        return data

    def packet(self) -> tuple[int, bytes]:
        """The next packet the session sent: (first byte, body)."""
        first = self._exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._exact(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._exact(length)

    def silent(self, seconds: float = 0.2) -> bool:
        """True when the session sends nothing for `seconds`."""
        assert self.conn is not None
        self.conn.settimeout(seconds)
        try:
            self.conn.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return True
        finally:
            self.conn.settimeout(5.0)
        return False

    def closed_by_session(self) -> bool:
        assert self.conn is not None
        self.conn.settimeout(2.0)
        try:
            while True:
                if not self.conn.recv(4096):
                    return True
        except TimeoutError:
            return False

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture()
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


def options(port: int, **overrides: object) -> SessionOptions:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "client_id": "unit-session",
        "username": "u",
        "password": "p",
        "keepalive_s": KEEPALIVE,
        "session_expiry_s": 3600,
        "receive_maximum": 65535,
        "topic_filters": ("tele/#",),
        "maximum_packet_size": 327_680,
    }
    values.update(overrides)
    return SessionOptions(**values)  # type: ignore[arg-type]


def connack(session_present: bool = False, reason: int = 0) -> bytes:
    return bytes((0x20, 3, 1 if session_present else 0, reason, 0))


def publish_qos1(packet_id: int, payload: bytes, topic: bytes = b"tele/x") -> bytes:
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id) + b"\x00" + payload
    assert len(body) < 128
    return bytes((0x32, len(body))) + body


def handshake(session: MqttSession, peer: Peer, clock: Clock, session_present: bool = False) -> bytes:
    """Drive the session to CONNECTED and subscribed on a new connection; the CONNECT's body."""
    while session.state is State.WAITING:
        session.poll(0.0)
    peer.accept()
    while session.state is State.CONNECTING:
        session.poll(0.1)
    first, connect = peer.packet()
    assert first == 0x10
    peer.send(connack(session_present))
    while session.state is State.HANDSHAKE:
        session.poll(0.1)
    assert session.connected
    session.flush()
    first, subscribe = peer.packet()
    assert first == 0x82 and subscribe[:2] == b"\x00\x01"
    peer.send(h("90 04 00 01 00 01"))  # SUBACK, id 1, no properties, granted QoS 1
    assert session.poll(0.5) == []
    return connect


def test_connect_announces_the_maximum_packet_size(peer: Peer) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    connect = handshake(session, peer, clock)
    # v5 3.1.2: protocol name (6 bytes), level, flags, keep alive (2), then the properties' length and properties.
    assert connect[6] == 5 and struct.unpack("!H", connect[8:10]) == (KEEPALIVE,)
    length, props = connect[10], connect[11 : 11 + connect[10]]
    assert len(props) == length
    found = {}
    i = 0
    sizes = {0x11: 4, 0x21: 2, 0x27: 4}
    while i < len(props):
        ident, size = props[i], sizes[props[i]]
        found[ident] = int.from_bytes(props[i + 1 : i + 1 + size], "big")
        i += 1 + size
    assert found == {0x11: 3600, 0x21: 65535, 0x27: 327_680}
    session.close()


def test_pingreq_once_per_keepalive_and_pingresp_clears_it(peer: Peer) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    handshake(session, peer, clock)
    clock.now = KEEPALIVE - 0.1
    session.poll(0.0)
    assert peer.silent(), "PINGREQ before the keep-alive period passed"
    clock.now = KEEPALIVE
    session.poll(0.0)
    assert peer.packet() == (0xC0, b"")
    for t in (KEEPALIVE + 1, KEEPALIVE + 5, KEEPALIVE + 9.9):  # waiting for its PINGRESP: not asked again
        clock.now = t
        session.poll(0.0)
    assert peer.silent(), "a second PINGREQ while the first waits for its PINGRESP"
    peer.send(h("d0 00"))
    session.poll(0.5)
    assert session.connected
    clock.now = 2 * KEEPALIVE
    session.poll(0.0)
    assert peer.packet() == (0xC0, b""), "the next period's PINGREQ"
    session.close()


def test_no_pingresp_within_the_keepalive_drops_and_reconnects_after_backoff(peer: Peer) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    handshake(session, peer, clock)
    clock.now = KEEPALIVE
    session.poll(0.0)
    assert peer.packet() == (0xC0, b"")
    clock.now = 2 * KEEPALIVE - 0.1
    session.poll(0.05)
    assert session.connected, "dropped before a whole keep-alive period without PINGRESP"
    clock.now = 2 * KEEPALIVE
    session.poll(0.05)
    assert session.state is State.WAITING
    assert peer.closed_by_session()
    clock.now = 2 * KEEPALIVE + 0.9  # reconnect_min_s is 1 s
    session.poll(0.0)
    assert session.state is State.WAITING and peer.nothing_to_accept()
    clock.now = 2 * KEEPALIVE + 1.0
    session.poll(0.0)
    assert session.state is State.CONNECTING
    peer.accept()
    session.close()


def test_partial_writes_keep_every_puback_in_order(peer: Peer) -> None:
    small = Peer(rcvbuf=4096)
    try:
        clock = Clock()
        session = MqttSession(options(small.port), clock=clock)
        handshake(session, small, clock)
        count = 60_000
        batch = b"".join(publish_qos1(n, str(n).encode()) for n in range(1, count + 1))
        rounds = 0
        # Rounds of PUBLISHes, each acknowledged at once, against a peer that reads none of the PUBACKs, until
        # the socket's buffers are full and a send takes only part of what is queued.
        while session.unsent == 0:
            assert rounds < 40, "the socket never refused part of a write"
            sender = threading.Thread(target=small.send, args=(batch,))
            sender.start()
            received: list[int] = []
            while len(received) < count:
                received += [p.packet_id for p in session.poll(0.5)]
            sender.join()
            assert received == list(range(1, count + 1))
            for pid in received:
                session.ack(session.connection, pid)
            session.flush()
            rounds += 1
        acked: list[int] = []
        while len(acked) < rounds * count:
            first, body = small.packet()
            assert first == 0x40 and len(body) == 2
            acked.append(struct.unpack("!H", body)[0])
            if len(acked) % 1000 == 0:
                session.flush()
        assert acked == list(range(1, count + 1)) * rounds and session.unsent == 0
        assert small.silent(), "more PUBACKs than messages"
        session.close()
    finally:
        small.close()


def test_a_packet_split_across_reads_arrives_once_whole(peer: Peer) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    handshake(session, peer, clock)
    packet = publish_qos1(7, b"split")
    peer.send(packet[:5])
    assert session.poll(0.3) == []
    peer.send(packet[5:])
    got = session.poll(0.5)
    assert [(p.packet_id, p.payload) for p in got] == [(7, b"split")]
    session.close()


def test_disconnect_from_the_broker_drops_the_connection_and_its_acks(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    handshake(session, peer, clock)
    peer.send(publish_qos1(3, b"m"))
    (msg,) = session.poll(0.5)
    first_connection = session.connection
    # DISCONNECT, Server shutting down (0x8b), Reason String "restart" (v5 3.14).
    peer.send(h("e0 0c 8b 0a 1f 00 07") + b"restart")
    session.poll(0.5)
    assert session.state is State.WAITING
    assert any("Server shutting down" in r.getMessage() and "restart" in r.getMessage() for r in caplog.records)
    session.ack(first_connection, msg.packet_id)  # its record became durable after the connection ended
    assert peer.closed_by_session()
    clock.now = 1.0
    handshake(session, peer, clock, session_present=True)
    assert session.connection == first_connection + 1
    session.flush()
    assert peer.silent(), "a PUBACK for the previous connection's message went out on the new one"
    session.close()


def test_a_session_the_broker_did_not_keep_is_warned_and_counted(peer: Peer) -> None:
    clock = Clock()
    lost: list[int] = []
    session = MqttSession(options(peer.port), clock=clock, on_session_lost=lambda: lost.append(1))
    handshake(session, peer, clock, session_present=False)  # the first connect: no session was expected
    assert session.sessions_lost == 0
    peer.conn.close()  # type: ignore[union-attr]
    while session.state is not State.WAITING:
        session.poll(0.1)
    clock.now = 1.0
    handshake(session, peer, clock, session_present=False)
    assert session.sessions_lost == 1 and lost == [1]
    peer.conn.close()  # type: ignore[union-attr]
    while session.state is not State.WAITING:
        session.poll(0.1)
    clock.now = 10.0
    handshake(session, peer, clock, session_present=True)
    assert session.sessions_lost == 1
    session.close()


@pytest.mark.parametrize(
    ("reason", "label", "named"),
    [
        (0x86, "bad-credentials", "F2_MQTT_PASSWORD"),
        (0x87, "not-authorized", "F2_MQTT_USERNAME"),
        (0x8C, "bad-authentication-method", "authentication method"),
    ],
)
def test_a_refused_login_ends_the_session_naming_the_setting(peer: Peer, reason: int, label: str, named: str) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    session.poll(0.0)
    peer.accept()
    while session.state is State.CONNECTING:
        session.poll(0.1)
    assert peer.packet()[0] == 0x10
    peer.send(connack(reason=reason))
    with pytest.raises(MqttRefusedError) as refused:
        for _ in range(20):
            session.poll(0.1)
    assert refused.value.reason == label and named in str(refused.value)
    assert session.state is State.CLOSED
    clock.now = 1000.0
    assert session.poll(0.0) == [] and peer.nothing_to_accept(), "reconnected after a refusal"


def test_a_refused_subscription_ends_the_session(peer: Peer) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    session.poll(0.0)
    peer.accept()
    while session.state is State.CONNECTING:
        session.poll(0.1)
    peer.packet()
    peer.send(connack())
    session.poll(0.5)
    session.flush()
    assert peer.packet()[0] == 0x82
    peer.send(h("90 04 00 01 00 87"))  # SUBACK: Not authorized
    with pytest.raises(MqttRefusedError) as refused:
        session.poll(0.5)
    assert refused.value.reason == "subscribe-not-authorized" and "tele/#" in str(refused.value)
    assert session.state is State.CLOSED


def test_a_retryable_refusal_reconnects(peer: Peer) -> None:
    clock = Clock()
    session = MqttSession(options(peer.port), clock=clock)
    session.poll(0.0)
    peer.accept()
    while session.state is State.CONNECTING:
        session.poll(0.1)
    peer.packet()
    peer.send(connack(reason=0x89))  # Server busy: worth another try
    for _ in range(10):
        session.poll(0.1)
        if session.state is State.WAITING:
            break
    assert session.state is State.WAITING
    clock.now = 1.0
    handshake(session, peer, clock)
    session.close()
