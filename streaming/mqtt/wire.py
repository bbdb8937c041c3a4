"""MQTT wire format for a subscriber: the packets the bridge sends, and an incremental decoder for what a
broker sends it (MQTT v5, OASIS standard; CONNECT also in 3.1.1 for the bench's load generator).

Pure bytes in and out, no I/O. The decoder is on the bridge's hot path: it walks one buffer with integer
offsets and allocates only the topic and payload of each PUBLISH; PUBLISH properties are skipped unread.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from functools import partial
from typing import Final, NamedTuple

from streaming.errors import MqttProtocolError

# Fixed-header first bytes (packet type << 4 | flags).
CONNECT: Final = 0x10
CONNACK: Final = 0x20
PUBLISH: Final = 0x30
PUBACK: Final = 0x40
SUBSCRIBE: Final = 0x82  # flags 0010 are mandatory
SUBACK: Final = 0x90
PINGREQ_BYTE: Final = 0xC0
PINGRESP: Final = 0xD0
DISCONNECT: Final = 0xE0

PINGREQ_PACKET: Final = b"\xc0\x00"
MAX_REMAINING_LENGTH: Final = 268_435_455  # four varint bytes

# v5 property identifiers the client writes or reads.
PROP_SESSION_EXPIRY_INTERVAL: Final = 0x11
PROP_SERVER_KEEP_ALIVE: Final = 0x13
PROP_REASON_STRING: Final = 0x1F
PROP_RECEIVE_MAXIMUM: Final = 0x21
PROP_MAXIMUM_PACKET_SIZE: Final = 0x27

# Value type of every v5 property, to skip the ones nobody reads.
_BYTE, _TWO, _FOUR, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
_PROPERTY_TYPES: Final[dict[int, int]] = {
    0x01: _BYTE,
    0x02: _FOUR,
    0x03: _UTF8,
    0x08: _UTF8,
    0x09: _BINARY,
    0x0B: _VARINT,
    0x11: _FOUR,
    0x12: _UTF8,
    0x13: _TWO,
    0x15: _UTF8,
    0x16: _BINARY,
    0x17: _BYTE,
    0x18: _FOUR,
    0x19: _BYTE,
    0x1A: _UTF8,
    0x1C: _UTF8,
    0x1F: _UTF8,
    0x21: _TWO,
    0x22: _TWO,
    0x23: _TWO,
    0x24: _BYTE,
    0x25: _BYTE,
    0x26: _PAIR,
    0x27: _FOUR,
    0x28: _BYTE,
    0x29: _BYTE,
    0x2A: _BYTE,
}
_FIXED_SIZES: Final[dict[int, int]] = {_BYTE: 1, _TWO: 2, _FOUR: 4}

REASONS: Final[dict[int, str]] = {
    0x00: "Success",
    0x01: "Granted QoS 1",
    0x02: "Granted QoS 2",
    0x04: "Disconnect with Will Message",
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep Alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x91: "Packet Identifier in use",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA0: "Maximum connect time",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}


def reason_name(code: int) -> str:
    return f"{REASONS.get(code, 'unknown reason')} (0x{code:02x})"


# --- packets a broker sends a subscriber ------------------------------------------------------------------
class Publish(NamedTuple):
    topic: bytes  # UTF-8 as the broker sent it; the bridge forwards these bytes unchanged
    payload: bytes
    qos: int
    packet_id: int  # 0 for QoS 0
    dup: bool
    retain: bool


class ConnAck(NamedTuple):
    reason_code: int
    session_present: bool
    server_keep_alive: int | None  # the broker's override of the client's keep alive
    reason_string: str | None


class SubAck(NamedTuple):
    packet_id: int
    reason_codes: tuple[int, ...]  # one per topic filter, in SUBSCRIBE order
    reason_string: str | None


class PingResp(NamedTuple):
    pass


class Disconnect(NamedTuple):
    reason_code: int
    reason_string: str | None


Packet = Publish | ConnAck | SubAck | PingResp | Disconnect
# tuple.__new__ directly: the NamedTuple constructor is a Python-level function, once per message.
_new_publish: Callable[[tuple[bytes, bytes, int, int, bool, bool]], Publish] = partial(tuple.__new__, Publish)
_PING_RESP: Final = PingResp()


# --- encoders ---------------------------------------------------------------------------------------------
def encode_remaining_length(n: int) -> bytes:
    """The Variable Byte Integer of MQTT: 7 bits per byte, least significant first, high bit = more."""
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{n} does not fit an MQTT variable byte integer (0..{MAX_REMAINING_LENGTH})")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string or binary data: two-byte big-endian length, then the bytes."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise ValueError(f"an MQTT string holds at most 65535 bytes, not {len(data)}")
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + encode_remaining_length(len(body)) + body


def connect_packet(
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    *,
    keepalive_s: int = 0,
    clean_start: bool = True,
    protocol_level: int = 5,
    session_expiry_s: int | None = None,
    receive_maximum: int | None = None,
    maximum_packet_size: int | None = None,
) -> bytes:
    """CONNECT without a will. `protocol_level` 5 (MQTT v5, with the three optional properties) or 4 (3.1.1)."""
    if protocol_level not in (4, 5):
        raise ValueError(f"protocol level {protocol_level} is neither 4 (MQTT 3.1.1) nor 5 (MQTT v5)")
    if not 0 <= keepalive_s <= 0xFFFF:
        raise ValueError(f"keep alive {keepalive_s} s is outside 0..65535")
    flags = 0x02 if clean_start else 0x00
    payload = encode_string(client_id)
    if username is not None:
        flags |= 0x80
        payload += encode_string(username)
    if password is not None:
        flags |= 0x40
        payload += encode_string(password)
    variable = encode_string("MQTT") + bytes((protocol_level, flags)) + struct.pack("!H", keepalive_s)
    properties = b""
    if session_expiry_s is not None:
        properties += struct.pack("!BI", PROP_SESSION_EXPIRY_INTERVAL, session_expiry_s)
    if receive_maximum is not None:
        if not 1 <= receive_maximum <= 0xFFFF:
            raise ValueError(f"Receive Maximum {receive_maximum} is outside 1..65535")
        properties += struct.pack("!BH", PROP_RECEIVE_MAXIMUM, receive_maximum)
    if maximum_packet_size is not None:
        if not 1 <= maximum_packet_size <= MAX_REMAINING_LENGTH + 5:
            raise ValueError(f"Maximum Packet Size {maximum_packet_size} is outside 1..{MAX_REMAINING_LENGTH + 5}")
        properties += struct.pack("!BI", PROP_MAXIMUM_PACKET_SIZE, maximum_packet_size)
    if protocol_level == 5:
        variable += encode_remaining_length(len(properties)) + properties
    elif properties:
        raise ValueError("MQTT 3.1.1 has no CONNECT properties")
    return _packet(CONNECT, variable + payload)


def subscribe_packet(packet_id: int, topic_filters: Iterable[str], qos: int) -> bytes:
    """v5 SUBSCRIBE, no properties; each filter's options byte carries only the maximum QoS (No Local,
    Retain As Published and Retain Handling 0, as shared subscriptions require for No Local)."""
    if not 1 <= packet_id <= 0xFFFF or qos not in (0, 1, 2):
        raise ValueError(f"bad SUBSCRIBE packet id {packet_id} or QoS {qos}")
    body = struct.pack("!HB", packet_id, 0)
    for topic_filter in topic_filters:
        body += encode_string(topic_filter) + bytes((qos,))
    return _packet(SUBSCRIBE, body)


_PUBACK_HEADER: Final = struct.Struct("!BBH")


def puback_packets(packet_ids: Iterable[int]) -> bytes:
    """PUBACKs in the v5 short form (reason Success and no properties are omitted: 40 02 <id>), concatenated
    for a single send."""
    pack = _PUBACK_HEADER.pack
    return b"".join([pack(PUBACK, 2, pid) for pid in packet_ids])


def disconnect_packet(reason_code: int = 0, session_expiry_s: int | None = None) -> bytes:
    """DISCONNECT; Normal disconnection (0) takes the two-byte short form. `session_expiry_s` replaces the
    session expiry the CONNECT gave (v5 3.14.2.2.2): 0 makes the broker discard the session now."""
    if session_expiry_s is not None:
        properties = struct.pack("!BI", PROP_SESSION_EXPIRY_INTERVAL, session_expiry_s)
        return bytes((DISCONNECT, 2 + len(properties), reason_code, len(properties))) + properties
    return b"\xe0\x00" if reason_code == 0 else bytes((DISCONNECT, 2, reason_code, 0))


# --- decoder ----------------------------------------------------------------------------------------------
def decode_packets(buf: bytes) -> tuple[list[Packet], int]:
    """Every complete packet at the start of `buf`, and how many bytes they took (the rest is an incomplete
    packet to prepend to the next read). Raises MqttProtocolError on a malformed or unexpected packet."""
    packets: list[Packet] = []
    append = packets.append
    end_of_data = len(buf)
    pos = 0
    while pos + 2 <= end_of_data:
        first = buf[pos]
        # Remaining length: nearly always one byte, so that case skips the loop.
        length = buf[pos + 1]
        body = pos + 2
        if length & 0x80:
            length &= 0x7F
            shift = 7
            while True:
                if shift > 21:
                    raise MqttProtocolError("malformed packet: remaining length longer than four bytes")
                if body >= end_of_data:
                    return packets, pos  # the varint itself is incomplete
                byte = buf[body]
                body += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
        end = body + length
        if end > end_of_data:
            break
        kind = first & 0xF0
        if kind == PUBLISH:
            qos = (first >> 1) & 0x03
            if length < 2:
                raise MqttProtocolError("malformed PUBLISH: shorter than its topic length")
            topic_end = body + 2 + ((buf[body] << 8) | buf[body + 1])
            if topic_end > end:
                raise MqttProtocolError("malformed PUBLISH: topic runs past the end of the packet")
            cursor = topic_end
            packet_id = 0
            if qos:
                if qos == 3:
                    raise MqttProtocolError("malformed PUBLISH: QoS 3")
                cursor += 2
                if cursor > end:
                    raise MqttProtocolError("malformed PUBLISH: ends inside its topic or packet identifier")
                packet_id = (buf[topic_end] << 8) | buf[topic_end + 1]
                if packet_id == 0:
                    raise MqttProtocolError("malformed PUBLISH: QoS > 0 with packet identifier 0")
            if cursor >= end:
                raise MqttProtocolError("malformed PUBLISH: ends before its properties")
            if buf[cursor] == 0:  # no properties, the usual case
                cursor += 1
            else:
                cursor = _skip_properties(buf, cursor, end)
            append(
                _new_publish(
                    (buf[body + 2 : topic_end], buf[cursor:end], qos, packet_id, bool(first & 0x08), bool(first & 0x01))
                )
            )
        else:
            append(_control_packet(first, buf, body, end))
        pos = end
    return packets, pos


def _skip_properties(buf: bytes, pos: int, end: int) -> int:
    """The offset after a property block at `pos` (its varint length included), checked against `end`."""
    length, pos = _varint(buf, pos, end)
    after = pos + length
    if after > end:
        raise MqttProtocolError("malformed packet: property length runs past the end of the packet")
    return after


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            raise MqttProtocolError("malformed packet: variable byte integer runs past the end of the packet")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise MqttProtocolError("malformed packet: variable byte integer longer than four bytes")


def _properties(buf: bytes, pos: int, end: int) -> dict[int, int | str | bytes]:
    """The properties starting at `pos` (a block that must end exactly at `end`); user properties are dropped."""
    length, pos = _varint(buf, pos, end)
    if pos + length != end:
        raise MqttProtocolError("malformed packet: property length does not match the packet length")
    props: dict[int, int | str | bytes] = {}
    while pos < end:
        ident = buf[pos]
        kind = _PROPERTY_TYPES.get(ident)
        pos += 1
        value: int | str | bytes
        if kind is None:
            raise MqttProtocolError(f"malformed packet: unknown property 0x{ident:02x}")
        if kind == _VARINT:
            value, pos = _varint(buf, pos, end)
        else:
            size = _FIXED_SIZES.get(kind)
            if size is not None:
                value = int.from_bytes(buf[pos : pos + size], "big")
                pos += size
            else:
                value, pos = _length_prefixed(buf, pos, end)
                if kind == _PAIR:
                    _, pos = _length_prefixed(buf, pos, end)
                    continue
                if kind == _UTF8:
                    value = value.decode("utf-8", "replace")
        if pos > end:
            raise MqttProtocolError(f"malformed packet: property 0x{ident:02x} runs past the end of the packet")
        props[ident] = value
    return props


def _length_prefixed(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise MqttProtocolError("malformed packet: string length runs past the end of the packet")
    after = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if after > end:
        raise MqttProtocolError("malformed packet: string runs past the end of the packet")
    return bytes(buf[pos + 2 : after]), after


def _reason_string(props: dict[int, int | str | bytes]) -> str | None:
    value = props.get(PROP_REASON_STRING)
    return value if isinstance(value, str) else None


def _control_packet(first: int, buf: bytes, body: int, end: int) -> Packet:
    length = end - body
    if first == CONNACK:
        if length < 2:
            raise MqttProtocolError("malformed CONNACK: shorter than 2 bytes")
        if buf[body] & 0xFE:
            raise MqttProtocolError("malformed CONNACK: reserved acknowledge flags set")
        # A broker that refuses v5 answers in the 3.1.1 form: two bytes, no properties.
        props = _properties(buf, body + 2, end) if length > 2 else {}
        keep_alive = props.get(PROP_SERVER_KEEP_ALIVE)
        return ConnAck(
            buf[body + 1],
            bool(buf[body] & 0x01),
            keep_alive if isinstance(keep_alive, int) else None,
            _reason_string(props),
        )
    if first == SUBACK:
        if length < 3:
            raise MqttProtocolError("malformed SUBACK: shorter than 3 bytes")
        packet_id = (buf[body] << 8) | buf[body + 1]
        props_length, codes_at = _varint(buf, body + 2, end)
        codes_at += props_length
        if codes_at >= end:
            raise MqttProtocolError("malformed SUBACK: no reason codes")
        props = _properties(buf, body + 2, codes_at)
        return SubAck(packet_id, tuple(buf[codes_at:end]), _reason_string(props))
    if first == PINGRESP:
        if length:
            raise MqttProtocolError("malformed PINGRESP: remaining length is not 0")
        return _PING_RESP
    if first == DISCONNECT:
        if length == 0:
            return Disconnect(0, None)
        props = _properties(buf, body + 1, end) if length > 1 else {}
        return Disconnect(buf[body], _reason_string(props))
    if first & 0xF0 in (CONNACK, SUBACK, PINGRESP, DISCONNECT):
        raise MqttProtocolError(f"malformed packet: reserved flags of packet type {first >> 4} set (0x{first:02x})")
    raise MqttProtocolError(f"unexpected MQTT packet type {first >> 4} (0x{first:02x}) for a subscriber")
