from __future__ import annotations

import math
import random
import re

import pytest

from simulator.frames import encode_frame
from streaming.decoding.frames import FrameLayout, decode_frame, decode_status, modbus_crc16
from streaming.decoding.hex import format_hex, parse_hex
from streaming.decoding.topology import FRAME_CHECK_MODBUS_CRC, FRAME_CHECK_NONE, Datapoint, Reading, WiredDevice
from streaming.errors import DecodeError
from tests.sample_registry import DEVICES_BY_NAME, label_of

TS = 1_772_359_200_000_000


def reference_crc(data: bytes) -> int:
    """Bit-by-bit CRC-16/MODBUS as the Modbus over serial line spec (6.2.2) describes it."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


def with_crc(body: bytes) -> bytes:
    crc = reference_crc(body)
    return body + bytes((crc & 0xFF, crc >> 8))


def device(*datapoints: Datapoint, frame_check: str = FRAME_CHECK_NONE, device_id: int = 900) -> WiredDevice:
    return WiredDevice(device_id, "test device", 90, "TEST", frame_check, datapoints)


def values(readings: list[Reading]) -> dict[int, float]:
    return {reading.datapoint_id: reading.value for reading in readings}


# ---------------------------------------------------------------------------------------------- CRC


@pytest.mark.parametrize(
    ("body", "crc_bytes"),
    [
        # Read holding registers request, widely quoted with its CRC (e.g. Simply Modbus, Modbus tools).
        ("01 03 00 00 00 0A", "C5 CD"),
        # The Modbus Application Protocol specification's example request, slave 0x11.
        ("11 03 00 6B 00 03", "76 87"),
        ("01 03 00 00 00 01", "84 0A"),
        ("01 06 00 01 00 03", "98 0B"),
    ],
)
def test_crc_of_known_modbus_frames(body: str, crc_bytes: str) -> None:
    crc = modbus_crc16(bytes.fromhex(body))
    low, high = bytes.fromhex(crc_bytes)
    assert crc == low | (high << 8)


def test_crc_catalogue_check_value() -> None:
    # CRC-16/MODBUS check value over "123456789" in the CRC RevEng catalogue.
    assert modbus_crc16(b"123456789") == 0x4B37


def test_crc_of_empty_data_is_the_initial_value() -> None:
    assert modbus_crc16(b"") == 0xFFFF


def test_crc_matches_the_bitwise_reference_on_random_data() -> None:
    rng = random.Random(20260301)
    for size in range(0, 300, 7):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert modbus_crc16(data) == reference_crc(data)


# ---------------------------------------------------------------------------------------------- hex


FRAME = b"\x01\x03\x06\x09\x30\x11\x9e\x02\x64\x05\xb1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("01 03 06 09 30 11 9E 02 64 05 B1", FRAME),
        ("01 03 06 09 30 11 9e 02 64 05 b1", FRAME),
        ("0103060930119e026405B1", FRAME),
        ("Ab cD", b"\xab\xcd"),
        ("ff", b"\xff"),
        # Irregular whitespace between and around bytes, as the reference deployment's devices send it.
        ("01  03 06   09 30 11 9E 02 64 05 B1", FRAME),
        (" 01 03 06 09 30 11 9E 02 64 05 B1 ", FRAME),
        ("\t01\t03\t06\t09\t30\t11\t9E\t02\t64\t05\tB1", FRAME),
        ("01 03 06 09 30\r\n11 9E 02 64 05 B1\r\n", FRAME),
        ("0103 06093011 9E02\n6405\x0bB1\x0c", FRAME),
        ("01 03 ", b"\x01\x03"),
        ("  ff\n", b"\xff"),
    ],
)
def test_parse_hex_accepts_case_and_whitespace_variants(text: str, expected: bytes) -> None:
    assert parse_hex(text) == expected


@pytest.mark.parametrize(
    ("text", "detail_parts"),
    [
        ("", ["empty"]),
        (" ", ["only whitespace"]),
        ("\t\r\n", ["only whitespace"]),
        ("01 03 0", ["odd number of hex digits (5)", "position 6", "'01 03 [0]'"]),
        ("010", ["odd number", "position 2", "'01[0]'"]),
        ("01 03 06 09 3", ["odd number", "position 12"]),
        ("01-03", ["'-' at position 2", "'01[-]03'"]),
        ("0x01", ["'x' at position 1", "'0[x]01'"]),
        ("01 0G", ["'G' at position 4", "'01 0[G]'"]),
        ("0 103", ["splits a byte", "position 1", "positions 0 and 2", "'0[ ]103'"]),
        ("01 0\t3 06", ["splits a byte", "position 4", "'01 0[\\t]3 06'"]),
        ("0103 0 6", ["splits a byte", "position 6"]),
        ("\u0661\u0662", ["U+0661", "position 0", "neither a hex digit nor whitespace"]),
        ("01\xa003", ["U+00A0", "position 2", "only spaces, tabs"]),
        ("01 0:", ["':' at position 4"]),
        ("0 -", ["'-' at position 2"]),
        # The context is bounded: a long text shows only the surroundings of the offending position.
        ("00 " * 40 + "0G" + " 00" * 40, ["'G' at position 121", "...'0 00 00 00 0[G] 00 00 00 00'..."]),
    ],
)
def test_parse_hex_rejects_and_shows_where(text: str, detail_parts: list[str]) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_hex(text)
    assert caught.value.reason == "bad-hex"
    for part in detail_parts:
        assert part in caught.value.detail, caught.value.detail
    assert "\n" not in caught.value.detail
    assert len(caught.value.detail) < 300


_SEPARATORS = " \t\n\r\x0b\x0c"
# The rule written independently of the decoder: optional separators, then byte pairs each followed by them.
_HEX_RULE = re.compile(r"[ \t\n\r\x0b\x0c]*(?:[0-9a-fA-F]{2}[ \t\n\r\x0b\x0c]*)+")


def test_parse_hex_follows_the_rule_on_random_text() -> None:
    rng = random.Random(16)
    alphabet = "0123456789abcdefABCDEF" + _SEPARATORS + "gG-x\xa0\u0661"
    accepted = refused = 0
    for _ in range(20000):
        if rng.random() < 0.5:
            # Mostly-valid text: pairs with random runs of separators, sometimes one character changed.
            pairs = [rng.randbytes(1).hex() for _ in range(rng.randint(0, 6))]
            text = "".join(rng.choice(["", "", " ", "  ", "\t", "\r\n"]) + p for p in pairs)
            text += rng.choice(["", " ", "\n"])
            if text and rng.random() < 0.3:
                at = rng.randrange(len(text))
                text = text[:at] + rng.choice(alphabet) + text[at + 1 :]
        else:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        if _HEX_RULE.fullmatch(text):
            expected = bytes(int(p, 16) for p in re.findall(r"[0-9a-fA-F]{2}", text))
            assert parse_hex(text) == expected, repr(text)
            accepted += 1
        else:
            with pytest.raises(DecodeError) as caught:
                parse_hex(text)
            assert caught.value.reason == "bad-hex"
            # Every refusal points at a position, except for text without a single non-separator character.
            if text.strip(_SEPARATORS):
                assert "position" in caught.value.detail, (repr(text), caught.value.detail)
            refused += 1
    assert min(accepted, refused) > 3000, (accepted, refused)


def test_format_hex() -> None:
    assert format_hex(b"\x01\x03\x06\xab\xcd") == "01 03 06 AB CD"
    assert format_hex(b"") == ""


# --------------------------------------------------------------------------------------- encodings


def test_every_encoding_with_hand_computed_values() -> None:
    dev = device(
        Datapoint(1, "i8", "Int8", 0, 1, 0, ""),
        Datapoint(2, "u8", "Uint8", 1, 1, 0, ""),
        Datapoint(3, "i16", "Int16", 2, 2, 0, ""),
        Datapoint(4, "u16", "Uint16", 4, 2, 0, ""),
        Datapoint(5, "i32", "Int32", 6, 4, 0, ""),
        Datapoint(6, "u32", "Uint32", 10, 4, 0, ""),
        Datapoint(7, "f32", "Float32", 14, 4, 0, ""),
    )
    frame = bytes.fromhex("80 FF 80 00 FF FF FF FF FF FE FF FF FF FF C0 20 00 00")
    readings = decode_frame(frame, dev, TS)
    assert values(readings) == {
        1: -128.0,
        2: 255.0,
        3: -32768.0,
        4: 65535.0,
        5: -2.0,
        6: 4294967295.0,
        7: -2.5,
    }
    assert [r.datapoint_id for r in readings] == [1, 2, 3, 4, 5, 6, 7]
    assert all(r.timestamp_us == TS and r.device_id == 900 for r in readings)
    assert all(type(r.value) is float for r in readings)


@pytest.mark.parametrize(
    ("encoding", "hex_bytes", "expected"),
    [
        ("Int8", "7F", 127.0),
        ("Int8", "FF", -1.0),
        ("Uint8", "00", 0.0),
        ("Int16", "7F FF", 32767.0),
        ("Int16", "FF FF", -1.0),
        ("Uint16", "80 00", 32768.0),
        ("Int32", "80 00 00 00", -2147483648.0),
        ("Int32", "7F FF FF FF", 2147483647.0),
        ("Uint32", "80 00 00 00", 2147483648.0),
        ("Float32", "3F 80 00 00", 1.0),
        ("Float32", "44 7D 50 00", 1013.25),
        ("Float32", "00 00 00 00", 0.0),
    ],
)
def test_single_encodings(encoding: str, hex_bytes: str, expected: float) -> None:
    raw = bytes.fromhex(hex_bytes)
    dev = device(Datapoint(1, "x", encoding, 0, len(raw), 0, ""))
    assert values(decode_frame(raw, dev, TS)) == {1: expected}


def test_float32_special_values_are_passed_through_unchanged() -> None:
    dev = device(Datapoint(1, "x", "Float32", 0, 4, 0, ""))
    assert values(decode_frame(bytes.fromhex("7F 80 00 00"), dev, TS)) == {1: math.inf}
    assert math.isnan(decode_frame(bytes.fromhex("7F C0 00 00"), dev, TS)[0].value)


@pytest.mark.parametrize(
    ("raw", "decimals", "expected"),
    [
        (2352, 2, 23.52),
        (-1234, 2, -12.34),
        (4510, 2, 45.1),
        (2301, 1, 230.1),
        (-1520, 3, -1.52),
        (1234567, 3, 1234.567),
        (612, 0, 612.0),
        (7, -2, 700.0),
    ],
)
def test_decimals_scale_the_raw_value(raw: int, decimals: int, expected: float) -> None:
    dev = device(Datapoint(1, "x", "Int32", 0, 4, decimals, ""))
    assert values(decode_frame(raw.to_bytes(4, "big", signed=True), dev, TS)) == {1: expected}


def test_values_out_of_the_plausible_range_are_never_clamped() -> None:
    dev = device(Datapoint(1, "Temperature", "Int16", 0, 2, 2, "°C", -40.0, 85.0))
    assert values(decode_frame((20000).to_bytes(2, "big"), dev, TS)) == {1: 200.0}
    assert values(decode_frame((-10000).to_bytes(2, "big", signed=True), dev, TS)) == {1: -100.0}


def test_overlapping_and_unordered_datapoints() -> None:
    dev = device(
        Datapoint(1, "low", "Uint16", 2, 2, 0, ""),
        Datapoint(2, "whole", "Uint32", 0, 4, 0, ""),
        Datapoint(3, "high", "Uint16", 0, 2, 0, ""),
    )
    readings = decode_frame(bytes.fromhex("00 01 00 02"), dev, TS)
    assert [(r.datapoint_id, r.value) for r in readings] == [(1, 2.0), (2, 65538.0), (3, 1.0)]


def test_bool_datapoints_are_not_read_from_frames() -> None:
    dev = device(Datapoint(1, "x", "Uint8", 0, 1, 0, ""), Datapoint(2, "flag", "Bool", 0, 0, 0, ""))
    assert values(decode_frame(b"\x05", dev, TS)) == {1: 5.0}


# ------------------------------------------------------------------------- Modbus frames with CRC

ENV = DEVICES_BY_NAME["Living Room Env"]
POWER = DEVICES_BY_NAME["Kitchen Power"]
PRESSURE = DEVICES_BY_NAME["Boiler Pressure"]


def by_label(device_: WiredDevice, readings: list[Reading]) -> dict[str, float]:
    return {label_of(device_, r.datapoint_id): r.value for r in readings}


def test_env_frame_built_by_hand() -> None:
    # 21.05 °C = 2105 = 0x0839, 50.00 % = 5000 = 0x1388, 800 ppm = 0x0320.
    frame = with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20"))
    assert by_label(ENV, decode_frame(frame, ENV, TS)) == {
        "Temperature": 21.05,
        "Humidity": 50.0,
        "CO2": 800.0,
    }


def test_power_frame_with_negative_int32() -> None:
    # 0.0 V, 0.000 A, -3500.0 W = -35000 = 0xFFFF7748, 0 kWh.
    body = bytes.fromhex("01 03 0C 00 00 00 00 FF FF 77 48 00 00 00 00")
    readings = decode_frame(with_crc(body), POWER, TS)
    assert by_label(POWER, readings) == {"Voltage": 0.0, "Current": 0.0, "Power": -3500.0, "Energy": 0.0}


def test_power_frame_with_uint32_max() -> None:
    body = bytes.fromhex("01 03 0C 00 00 00 00 00 00 00 00 FF FF FF FF")
    assert by_label(POWER, decode_frame(with_crc(body), POWER, TS))["Energy"] == 4294967.295


def test_wrong_crc() -> None:
    frame = bytearray(with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20")))
    good_crc = frame[-2] | (frame[-1] << 8)
    frame[-1] ^= 0xFF
    with pytest.raises(DecodeError) as caught:
        decode_frame(bytes(frame), ENV, TS)
    assert caught.value.reason == "crc"
    assert f"0x{good_crc:04X}" in caught.value.detail


def test_crc_with_swapped_byte_order_is_wrong() -> None:
    frame = with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20"))
    swapped = frame[:-2] + bytes((frame[-1], frame[-2]))
    with pytest.raises(DecodeError) as caught:
        decode_frame(swapped, ENV, TS)
    assert caught.value.reason == "crc"


def test_corrupted_data_byte_is_a_crc_error() -> None:
    frame = bytearray(with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20")))
    frame[4] ^= 0x01
    with pytest.raises(DecodeError) as caught:
        decode_frame(bytes(frame), ENV, TS)
    assert caught.value.reason == "crc"


@pytest.mark.parametrize("size", [0, 1, 4])
def test_frame_shorter_than_a_modbus_response(size: int) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_frame(bytes.fromhex("01 03 06 08")[:size], ENV, TS)
    assert caught.value.reason == "frame-length"
    assert f"frame has {size} bytes" in caught.value.detail


def test_byte_count_disagrees_with_frame_length() -> None:
    # Byte count says 6 but only 2 data bytes follow (a truncated frame).
    with pytest.raises(DecodeError) as caught:
        decode_frame(bytes.fromhex("01 03 06 09 30"), ENV, TS)
    assert caught.value.reason == "frame-length"
    assert "11 bytes" in caught.value.detail and "has 5" in caught.value.detail


def test_frame_longer_than_its_byte_count() -> None:
    frame = with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20")) + b"\x00"
    with pytest.raises(DecodeError) as caught:
        decode_frame(frame, ENV, TS)
    assert caught.value.reason == "frame-length"


def test_modbus_exception_response() -> None:
    frame = with_crc(bytes.fromhex("01 83 02"))
    with pytest.raises(DecodeError) as caught:
        decode_frame(frame, ENV, TS)
    assert caught.value.reason == "frame-length"
    assert "exception" in caught.value.detail


def test_datapoint_outside_a_frame_with_valid_crc() -> None:
    # A consistent frame with 4 data bytes: CO2 at offset 7..8 lies in the CRC.
    frame = with_crc(bytes.fromhex("01 03 04 08 39 13 88"))
    with pytest.raises(DecodeError) as caught:
        decode_frame(frame, ENV, TS)
    assert caught.value.reason == "frame-length"
    assert "'CO2'" in caught.value.detail


def test_datapoint_outside_a_frame_without_crc() -> None:
    dev = device(Datapoint(1, "a", "Uint16", 0, 2, 0, ""), Datapoint(2, "b", "Uint32", 2, 4, 0, ""))
    with pytest.raises(DecodeError) as caught:
        decode_frame(bytes(5), dev, TS)
    assert caught.value.reason == "frame-length"
    assert "'b'" in caught.value.detail
    assert values(decode_frame(bytes(6), dev, TS)) == {1: 0.0, 2: 0.0}


def test_registry_length_that_disagrees_with_the_encoding() -> None:
    dev = device(Datapoint(7, "Temperature", "Int16", 3, 4, 2, "°C"), frame_check=FRAME_CHECK_MODBUS_CRC)
    frame = with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20"))
    for _ in range(2):  # the layout remembers the problem; each frame still raises
        with pytest.raises(DecodeError) as caught:
            decode_frame(frame, dev, TS)
        assert caught.value.reason == "frame-length"
        assert "'Temperature'" in caught.value.detail and "length 4" in caught.value.detail


def test_unknown_encoding_in_the_registry() -> None:
    dev = device(Datapoint(7, "Name", "String", 0, 4, 0, ""))
    with pytest.raises(DecodeError) as caught:
        decode_frame(bytes(4), dev, TS)
    assert caught.value.reason == "frame-length"
    assert "'String'" in caught.value.detail


def test_device_without_frame_datapoints_yields_no_readings() -> None:
    assert decode_frame(with_crc(bytes.fromhex("01 03 00")), device(frame_check=FRAME_CHECK_MODBUS_CRC), TS) == []


# ----------------------------------------------------------------------------------- layout cache


def test_layout_is_cached_per_device_and_shared_by_equal_devices() -> None:
    FrameLayout.clear_cache()
    first = FrameLayout.for_device(ENV)
    assert FrameLayout.for_device(ENV) is first
    equal_copy = WiredDevice(
        ENV.device_id, ENV.device_name, ENV.template_id, ENV.template_name, ENV.frame_check, ENV.datapoints
    )
    assert FrameLayout.for_device(equal_copy) is first


def test_layout_follows_a_changed_registry_record() -> None:
    before = device(Datapoint(1, "x", "Uint16", 0, 2, 0, ""), device_id=901)
    after = device(Datapoint(1, "x", "Uint16", 0, 2, 1, ""), device_id=901)
    assert values(decode_frame(b"\x00\x0a", before, TS)) == {1: 10.0}
    assert values(decode_frame(b"\x00\x0a", after, TS)) == {1: 1.0}


# ------------------------------------------------------------------------------------------ status

DOOR = DEVICES_BY_NAME["Main Door"]
MOTION = DEVICES_BY_NAME["Lobby Motion"]


def test_status_fields_become_readings() -> None:
    readings = decode_status({"door-sensor-1": False, "door-sensor-2": True}, DOOR, TS)
    assert readings == [Reading(TS, DOOR.device_id, 401, 0.0), Reading(TS, DOOR.device_id, 402, 1.0)]


def test_status_ignores_unknown_fields_and_absent_labels() -> None:
    readings = decode_status({"door-sensor-2": True, "battery": 3, "status": "x"}, DOOR, TS)
    assert readings == [Reading(TS, DOOR.device_id, 402, 1.0)]
    assert decode_status({}, MOTION, TS) == []


@pytest.mark.parametrize("value", [1, 0, "true", None, 1.0, [True]])
def test_status_label_with_a_non_boolean_value(value: object) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_status({"status": value}, MOTION, TS)
    assert caught.value.reason == "malformed-payload"
    assert "'status'" in caught.value.detail


def test_status_does_not_read_frame_datapoints() -> None:
    assert decode_status({"Temperature": True}, ENV, TS) == []


# ---------------------------------------------------------------------------------------- encoding


def test_encode_frame_builds_the_hand_computed_frame() -> None:
    frame = encode_frame({"Temperature": 21.05, "Humidity": 50.0, "CO2": 800.0}, ENV.datapoints)
    assert frame == with_crc(bytes.fromhex("01 03 06 08 39 13 88 03 20"))


def test_encode_frame_uses_the_slave_address() -> None:
    frame = encode_frame({"Temperature": 0.0, "Humidity": 0.0, "CO2": 0.0}, ENV.datapoints, slave=0x11)
    assert frame[0] == 0x11
    assert frame[1] == 0x03 and frame[2] == 6


@pytest.mark.parametrize(
    ("device_", "readings_in"),
    [
        (ENV, {"Temperature": -12.34, "Humidity": 99.99, "CO2": 1500.0}),
        (ENV, {"Temperature": -327.68, "Humidity": 655.35, "CO2": 0.0}),
        (POWER, {"Voltage": 230.1, "Current": -1.52, "Power": -3500.0, "Energy": 1234.567}),
        (POWER, {"Voltage": 6553.5, "Current": 32.767, "Power": -214748364.8, "Energy": 4294967.295}),
        (PRESSURE, {"Pressure": 1013.25, "Probe Temperature": -5.0, "Battery": 87.0}),
        (PRESSURE, {"Pressure": -0.5, "Probe Temperature": -128.0, "Battery": 255.0}),
    ],
)
def test_encode_then_decode_round_trips(device_: WiredDevice, readings_in: dict[str, float]) -> None:
    frame = encode_frame(readings_in, device_.datapoints)
    decoded = by_label(device_, decode_frame(frame, device_, TS))
    assert decoded.keys() == readings_in.keys()
    for label, value in readings_in.items():
        assert decoded[label] == pytest.approx(value, abs=1e-9)


def test_encode_then_decode_round_trips_random_values() -> None:
    rng = random.Random(7)
    for _ in range(500):
        sent = {
            "Voltage": rng.randrange(0, 65536) / 10,
            "Current": rng.randrange(-32768, 32768) / 1000,
            "Power": rng.randrange(-(2**31), 2**31) / 10,
            "Energy": rng.randrange(0, 2**32) / 1000,
        }
        decoded = by_label(POWER, decode_frame(encode_frame(sent, POWER.datapoints), POWER, TS))
        for label, value in sent.items():
            assert abs(decoded[label] - value) <= 1e-9 * max(1.0, abs(value))


def test_encode_rejects_a_value_the_encoding_cannot_hold() -> None:
    with pytest.raises(ValueError, match="Temperature"):
        encode_frame({"Temperature": 400.0, "Humidity": 0.0, "CO2": 0.0}, ENV.datapoints)
    with pytest.raises(ValueError, match="CO2"):
        encode_frame({"Temperature": 0.0, "Humidity": 0.0, "CO2": -1.0}, ENV.datapoints)
    with pytest.raises(ValueError, match="CO2"):
        encode_frame({"Temperature": 0.0, "Humidity": 0.0, "CO2": math.nan}, ENV.datapoints)


def test_encode_rejects_missing_values() -> None:
    with pytest.raises(ValueError, match="Humidity"):
        encode_frame({"Temperature": 20.0, "CO2": 400.0}, ENV.datapoints)
