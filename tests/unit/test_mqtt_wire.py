"""MQTT wire format against bytes written out by hand from the MQTT v5 (and 3.1.1) specification, never against
the module's own encoder."""

from __future__ import annotations

import pytest

from streaming.errors import MqttProtocolError, StreamingError
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
    encode_remaining_length,
    encode_string,
    puback_packets,
    reason_name,
    subscribe_packet,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- encoders -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [  # the boundaries of v5 section 1.5.5 (Variable Byte Integer)
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (16_383, "ff 7f"),
        (16_384, "80 80 01"),
        (2_097_151, "ff ff 7f"),
        (2_097_152, "80 80 80 01"),
        (268_435_455, "ff ff ff 7f"),
    ],
)
def test_remaining_length_boundaries(value: int, expected: str) -> None:
    assert encode_remaining_length(value) == h(expected)


@pytest.mark.parametrize("value", [-1, 268_435_456])
def test_remaining_length_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        encode_remaining_length(value)


def test_string_is_length_prefixed_utf8() -> None:
    assert encode_string("MQTT") == h("00 04 4d 51 54 54")
    assert encode_string("é") == h("00 02 c3 a9")
    assert encode_string(b"\x00\xff") == h("00 02 00 ff")
    with pytest.raises(ValueError):
        encode_string(b"x" * 65536)


def test_connect_v5_with_session_expiry_and_receive_maximum() -> None:
    packet = connect_packet(
        "f2-bridge-0", "u", "p", keepalive_s=30, clean_start=False, session_expiry_s=604_800, receive_maximum=1000
    )
    assert packet == h(
        "10 26"  # CONNECT, remaining length 38
        " 00 04 4d 51 54 54"  # protocol name "MQTT"
        " 05"  # protocol version 5
        " c0"  # user name + password, clean start off, no will
        " 00 1e"  # keep alive 30 s
        " 08 11 00 09 3a 80 21 03 e8"  # properties: Session Expiry Interval 604800, Receive Maximum 1000
        " 00 0b 66 32 2d 62 72 69 64 67 65 2d 30"  # client id "f2-bridge-0"
        " 00 01 75"  # user name "u"
        " 00 01 70"  # password "p"
    )


def test_connect_v5_anonymous_clean_start_without_properties() -> None:
    assert connect_packet("c") == h("10 0e 00 04 4d 51 54 54 05 02 00 00 00 00 01 63")


def test_connect_v311_as_the_load_generator_sends_it() -> None:
    assert connect_packet("c", "u", None, protocol_level=4) == h(
        "10 10 00 04 4d 51 54 54 04 82 00 00 00 01 63 00 01 75"
    )
    with pytest.raises(ValueError):
        connect_packet("c", protocol_level=4, session_expiry_s=1)


def test_connect_rejects_receive_maximum_zero() -> None:
    with pytest.raises(ValueError):
        connect_packet("c", receive_maximum=0)


def test_connect_v5_announces_a_maximum_packet_size() -> None:
    # v5 3.1.2.11.4: property 0x27, a Four Byte Integer; 327680 = 0x00050000 (256 kB + 64 kB headroom).
    assert connect_packet("c", maximum_packet_size=327_680) == h(
        "10 13 00 04 4d 51 54 54 05 02 00 00 05 27 00 05 00 00 00 01 63"
    )
    with pytest.raises(ValueError):
        connect_packet("c", maximum_packet_size=0)


def test_subscribe_v5_with_qos_1_options() -> None:
    assert subscribe_packet(1, ["a/b", "c/#"], 1) == h(
        "82 0f"  # SUBSCRIBE (flags 0010), remaining length 15
        " 00 01"  # packet id 1
        " 00"  # no properties
        " 00 03 61 2f 62 01"  # "a/b", maximum QoS 1, No Local 0, Retain As Published 0, Retain Handling 0
        " 00 03 63 2f 23 01"  # "c/#", same options
    )


def test_puback_short_form_concatenated() -> None:
    assert puback_packets([1, 258, 65535]) == h("40 02 00 01 40 02 01 02 40 02 ff ff")
    assert puback_packets([]) == b""


def test_pingreq_and_disconnect() -> None:
    assert h("c0 00") == PINGREQ_PACKET
    assert disconnect_packet() == h("e0 00")
    assert disconnect_packet(0x04) == h("e0 02 04 00")
    # Reason 0, properties length 5: Session Expiry Interval (0x11), four bytes.
    assert disconnect_packet(session_expiry_s=0) == h("e0 07 00 05 11 00 00 00 00")
    assert disconnect_packet(0x04, session_expiry_s=300) == h("e0 07 04 05 11 00 00 01 2c")


# --- decoder ------------------------------------------------------------------------------------------------
# QoS 1 PUBLISH, topic "a/b", packet id 0x1234, properties Payload Format Indicator 1 and Message Expiry
# Interval 60, payload "hi".
PUBLISH_WITH_PROPERTIES = h("32 11 00 03 61 2f 62 12 34 07 01 01 02 00 00 00 3c 68 69")
# QoS 0 PUBLISH with retain, topic "a/b", no properties, payload "x".
PUBLISH_QOS0_RETAINED = h("31 07 00 03 61 2f 62 00 78")


def test_publish_with_properties_skips_them() -> None:
    packets, used = decode_packets(PUBLISH_WITH_PROPERTIES)
    assert packets == [Publish(b"a/b", b"hi", 1, 0x1234, False, False)]
    assert used == len(PUBLISH_WITH_PROPERTIES)


def test_publish_flags() -> None:
    dup = b"\x3a" + PUBLISH_WITH_PROPERTIES[1:]
    assert decode_packets(dup)[0] == [Publish(b"a/b", b"hi", 1, 0x1234, True, False)]
    assert decode_packets(PUBLISH_QOS0_RETAINED)[0] == [Publish(b"a/b", b"x", 0, 0, False, True)]


def test_publish_with_two_byte_remaining_length() -> None:
    payload = bytes(range(192))
    packet = h("32 c8 01 00 03 61 2f 62 00 07 00") + payload  # remaining 200 = 5 + 2 + 1 + 192
    assert decode_packets(packet) == ([Publish(b"a/b", payload, 1, 7, False, False)], 203)


def test_packets_split_across_two_chunks() -> None:
    stream = PUBLISH_WITH_PROPERTIES + h("d0 00") + PUBLISH_QOS0_RETAINED
    expected = [Publish(b"a/b", b"hi", 1, 0x1234, False, False), PingResp(), Publish(b"a/b", b"x", 0, 0, False, True)]
    for cut in range(len(stream) + 1):
        first, used = decode_packets(stream[:cut])
        rest, used_rest = decode_packets(stream[used:cut] + stream[cut:])
        assert first + rest == expected, cut
        assert used + used_rest == len(stream), cut


def test_incomplete_remaining_length_waits_for_more() -> None:
    assert decode_packets(h("32 c8")) == ([], 0)
    assert decode_packets(h("d0")) == ([], 0)
    assert decode_packets(b"") == ([], 0)


def test_connack() -> None:
    assert decode_packets(h("20 03 01 00 00"))[0] == [ConnAck(0, True, None, None)]
    # Refused (0x86), with Server Keep Alive 60 and Reason String "nope".
    refused = h("20 0d 00 86 0a 13 00 3c 1f 00 04 6e 6f 70 65")
    assert decode_packets(refused)[0] == [ConnAck(0x86, False, 60, "nope")]
    # A 3.1.1 broker refusing protocol version 5: two bytes, no properties.
    assert decode_packets(h("20 02 00 01"))[0] == [ConnAck(1, False, None, None)]


def test_suback_disconnect_pingresp() -> None:
    assert decode_packets(h("90 05 00 01 00 01 80"))[0] == [SubAck(1, (0x01, 0x80), None)]
    assert decode_packets(h("d0 00"))[0] == [PingResp()]
    assert decode_packets(h("e0 00"))[0] == [Disconnect(0, None)]
    assert decode_packets(h("e0 01 8e"))[0] == [Disconnect(0x8E, None)]
    assert decode_packets(h("e0 08 8b 06 1f 00 03 62 79 65"))[0] == [Disconnect(0x8B, "bye")]


def test_reason_names() -> None:
    assert reason_name(0x86) == "Bad User Name or Password (0x86)"
    assert reason_name(0x7F) == "unknown reason (0x7f)"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("32 ff ff ff ff 01", "remaining length longer than four bytes"),
        ("36 06 00 01 61 00 01 00", "QoS 3"),
        ("32 06 00 01 61 00 00 00", "packet identifier 0"),
        ("30 04 00 09 61 62", "topic runs past the end"),
        ("30 03 00 01 61", "ends before its properties"),
        ("32 04 00 01 61 00", "ends inside its topic or packet identifier"),
        ("30 05 00 01 61 05 00", "property length runs past the end"),
        ("21 03 00 00 00", "reserved flags"),
        ("40 02 00 01", "unexpected MQTT packet type 4"),
        ("d0 01 00", "PINGRESP"),
        ("20 05 00 00 02 99 00", "unknown property 0x99"),
    ],
)
def test_malformed_packets_raise_one_error_type(data: str, message: str) -> None:
    with pytest.raises(MqttProtocolError, match=message) as caught:
        decode_packets(h(data))
    assert isinstance(caught.value, StreamingError)
