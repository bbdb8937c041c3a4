"""The processor's per-frame path (streaming/decoding/native.py) and its native extension
(streaming/decoding/_frame_records.c, built by the build backend: setup.py).

The native path must give exactly the records the pure path gives, byte for byte, and leave every input it
does not take to the pure path, which explains it. Checked three ways: the test vectors (values given by
the vector file), hand-computed records, and a differential run over random templates and frames. Each asks
the extension itself (`native_records`) and counts the frames it took, so an extension that is missing or
that silently declines everything fails here instead of leaving every frame to the pure path unnoticed.
"""

from __future__ import annotations

import json
import random
import struct
from datetime import datetime, timedelta
from typing import Any

import pytest

from simulator.frames import encode_frame
from streaming.decoding import native as fr
from streaming.decoding.frames import FrameLayout, modbus_crc16
from streaming.decoding.payload import Payload, parse_payload
from streaming.decoding.topology import FRAME_CHECK_MODBUS_CRC, FRAME_CHECK_NONE, Datapoint, WiredDevice
from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic, parse_topic
from tests.unit.test_decoder_vectors import (
    DEAD_LETTER_CASES,
    MAX_PAYLOAD_BYTES,
    ROW_CASES,
    device_timestamp_us,
    label_of,
    lookup,
)

TOPIC = parse_topic("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1")
TS = 1_772_359_200_000_000  # 2026-03-01T10:00:00Z
# The instants datetime can hold, in microseconds since the epoch.
MIN_US = (datetime(1, 1, 1) - datetime(1970, 1, 1)) // timedelta(microseconds=1)
MAX_US = (datetime.max - datetime(1970, 1, 1)) // timedelta(microseconds=1)
_ENCODINGS = {"Int8": 1, "Uint8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Float32": 4}


def device(points: list[tuple[str, int, int]], check: str = FRAME_CHECK_MODBUS_CRC, device_id: int = 7) -> WiredDevice:
    """A device whose datapoints are (encoding, offset, decimals), with ids 101, 102, ..."""
    return WiredDevice(
        device_id=device_id,
        device_name="dev",
        template_id=1,
        template_name="t",
        frame_check=check,
        datapoints=tuple(
            Datapoint(101 + i, f"p{i}", enc, offset, _ENCODINGS.get(enc, 2), decimals, "u")
            for i, (enc, offset, decimals) in enumerate(points)
        ),
    )


def with_crc(body: bytes) -> bytes:
    crc = modbus_crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def payload(frame_hex: str, timestamp_us: int = TS) -> Payload:
    return Payload(timestamp_us, frame_hex, {})


def native_records(dev: WiredDevice, message: Payload, topic: MqttTopic = TOPIC) -> fr.Records | None:
    """What the extension itself returns for a frame message: its records, or None when it leaves the message to
    the pure path (the layout is one it cannot take, or the frame is not one it accepts)."""
    assert fr._EXTENSION is not None, "streaming.decoding._frame_records did not import: `make provision` builds it"
    assert topic.carries_frame and message.data is not None
    layout = fr._native_layout(FrameLayout.for_device(dev))
    return None if layout is None else layout.records(message.data, message.timestamp_us)


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "records", function(*args)
    except DecodeError as exc:
        return "dead", (exc.reason, exc.detail)


def test_native_extension_is_built() -> None:
    assert fr.NATIVE, "streaming.decoding._frame_records is not built: `make provision` (uv sync) builds it"
    assert fr._EXTENSION is not None and fr._EXTENSION.__name__ == "streaming.decoding._frame_records"


# --- the test vectors: values from the vector file ---------------------------------------------------------


@pytest.mark.parametrize("case", ROW_CASES)
def test_vector_rows_as_records(case: dict[str, Any]) -> None:
    topic = parse_topic(case["topic"])
    parsed = parse_payload(json.dumps(case["payload"]).encode(), MAX_PAYLOAD_BYTES)
    dev = lookup(topic)
    records = fr.frame_records(topic, parsed, dev)
    assert records == fr.pure_frame_records(topic, parsed, dev)
    if topic.carries_frame:
        # Every frame of the vectors is well-formed and of a layout the extension takes: it decodes it itself.
        assert native_records(dev, parsed, topic) == records
    stamp = datetime.strptime(case["payload"]["timestamp"], "%Y-%m-%d %H:%M:%S.%f").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert device_timestamp_us(case["payload"]["timestamp"]) == parsed.timestamp_us
    expected = {row["datapoint"]: row["value"] for row in case["expect_rows"]}
    got = {}
    for key, value in records:
        obj = json.loads(value)
        assert key == f"{dev.device_id}:{obj['datapoint_id']}".encode()
        assert obj["timestamp"] == stamp and obj["device_id"] == dev.device_id
        got[label_of(dev, obj["datapoint_id"])] = obj["value"]
    assert got.keys() == expected.keys()
    for label, value in expected.items():
        assert abs(got[label] - value) <= 1e-9, f"{label}: {got[label]!r}, expected {value!r}"


@pytest.mark.parametrize("case", DEAD_LETTER_CASES)
def test_vector_dead_letters_keep_their_reason(case: dict[str, Any]) -> None:
    topic = parse_topic(case["topic"])
    try:
        parsed = parse_payload(json.dumps(case["payload"]).encode(), MAX_PAYLOAD_BYTES)
        dev = lookup(topic)
    except DecodeError as exc:
        assert exc.reason == case["expect_dead_letter"]
        return
    with pytest.raises(DecodeError) as caught:
        fr.frame_records(topic, parsed, dev)
    assert caught.value.reason == case["expect_dead_letter"]


# --- hand-computed records ---------------------------------------------------------------------------------


def test_hand_computed_records() -> None:
    dev = device([("Int16", 3, 2), ("Uint16", 5, 1), ("Float32", 7, 0), ("Uint32", 11, -3)])
    body = bytes([1, 3, 12]) + struct.pack(">hHfI", -2352, 451, 1.5, 7)
    message = payload(with_crc(body).hex(" ").upper(), TS + 42)
    records = fr.frame_records(TOPIC, message, dev)
    head = '{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 7, '
    assert native_records(dev, message) == records
    assert records == [
        (b"7:101", (head + '"datapoint_id": 101, "value": -23.52}').encode()),
        (b"7:102", (head + '"datapoint_id": 102, "value": 45.1}').encode()),
        (b"7:103", (head + '"datapoint_id": 103, "value": 1.5}').encode()),
        (b"7:104", (head + '"datapoint_id": 104, "value": 7000.0}').encode()),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "0103020930be00",
        "01 03 02 09 30 BE 00",
        "01 03 02 09 30 be 00",
        # Irregular whitespace: the extension takes these too, so such a fleet keeps the fast path.
        "01  03 02 09 30 BE 00",
        " 01 03 02 09 30 BE 00 ",
        "01\t03\t02\t09\t30\tBE\t00",
        "01 03 02 09 30 BE 00\r\n",
        "0103 020930BE00",
        "\n\x0b\x0c01 0302  0930BE\t00   ",
    ],
)
def test_every_hex_form_the_pure_path_accepts(text: str) -> None:
    dev = device([("Int16", 3, 2)])
    assert with_crc(bytes.fromhex("0103020930")).hex() == "0103020930be00"
    got = fr.frame_records(TOPIC, payload(text), dev)
    assert native_records(dev, payload(text)) == got
    assert got == fr.pure_frame_records(TOPIC, payload(text), dev)
    assert json.loads(got[0][1])["value"] == 23.52


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("01 03 02 09 30 BE 01", "crc"),
        ("01 03 02 09 30 BE", "frame-length"),
        ("01 03 02 09 30 BE 0G", "bad-hex"),
        ("01 03 02 09 30 BE 0 0", "bad-hex"),
        ("0 103 02 09 30 BE 00", "bad-hex"),
        ("01 03 02 09 30 BE 00 0", "bad-hex"),
        ("01 03 02 09 30 BE\xa000", "bad-hex"),
        ("01 03 02 09 30 BE 00\x1c", "bad-hex"),
        ("", "bad-hex"),
        (" \t\r\n", "bad-hex"),
        ("é1", "bad-hex"),
    ],
)
def test_bad_frames_are_explained_by_the_pure_path(text: str, reason: str) -> None:
    dev = device([("Int16", 3, 2)])
    native, pure = (
        outcome(fr.frame_records, TOPIC, payload(text), dev),
        outcome(fr.pure_frame_records, TOPIC, payload(text), dev),
    )
    assert native == pure
    assert native[0] == "dead" and native[1][0] == reason
    assert native_records(dev, payload(text)) is None, "the extension takes no frame the pure path refuses"


def test_non_finite_float_is_a_malformed_payload() -> None:
    dev = device([("Float32", 3, 0)])
    frame = with_crc(bytes([1, 3, 4]) + struct.pack(">f", float("nan")))
    with pytest.raises(DecodeError) as caught:
        fr.frame_records(TOPIC, payload(frame.hex()), dev)
    assert caught.value.reason == "malformed-payload" and "non-finite" in caught.value.detail


def test_scale_beyond_exact_doubles_falls_back_to_the_pure_path() -> None:
    # 4294967295 * 10**7 exceeds 2**53: the pure path's exact integer division decides the value.
    dev = device([("Uint32", 3, -7)])
    frame = with_crc(bytes([1, 3, 4]) + struct.pack(">I", 4294967295))
    records = fr.frame_records(TOPIC, payload(frame.hex()), dev)
    assert json.loads(records[0][1])["value"] == 42949672950000000.0


def test_registry_mistake_keeps_its_explanation() -> None:
    dev = device([("Int16", 3, 0), ("Int24", 5, 0)])
    with pytest.raises(DecodeError) as caught:
        fr.frame_records(TOPIC, payload("01 03 04 00 01 00 02 2A 32"), dev)
    assert caught.value.reason == "frame-length" and "Int24" in caught.value.detail


def test_a_native_layout_is_complete_or_refuses_work() -> None:
    assert fr._EXTENSION is not None
    layout_type = fr._EXTENSION.Layout
    head, tail = b'{"timestamp": "', b"}"
    good = (3, "h", 1, 100, b"7:101", b", ")
    with pytest.raises(ValueError, match="not initialised"):
        layout_type.__new__(layout_type).records("0103020930BE00", TS)
    half_built = layout_type.__new__(layout_type)
    for items in ([good, (5, "q", 1, 1, b"k", b"m")], [good, (2000, "h", 1, 1, b"k", b"m")], [good, [5, "h"]]):
        with pytest.raises(ValueError, match="datapoint 1"):
            half_built.__init__(items, True, False, 5, head, tail)
    with pytest.raises(ValueError, match="not initialised"):
        half_built.records("0103020930BE00", TS)
    built = layout_type([good], True, False, 5, head, tail)
    assert built.records("0103020930BE00", TS) == [(b"7:101", head + b"2026-03-01T10:00:00.000000Z, 23.52}")]
    with pytest.raises(TypeError, match="once"):
        built.__init__([good], True, False, 5, head, tail)


# --- timestamps ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instant",
    [
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(1970, 1, 1),
        datetime(1900, 3, 1),
        datetime(2000, 2, 29, 12, 0, 0, 1),
        datetime(2100, 2, 28, 23, 59, 59),
        datetime(2026, 11, 30, 9, 46, 15, 123456),
    ],
)
def test_native_stamp_of_boundary_instants(instant: datetime) -> None:
    micros = (instant - datetime(1970, 1, 1)) // timedelta(microseconds=1)
    assert fr._EXTENSION is not None
    assert fr._EXTENSION.format_stamp(micros) == instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")


def test_native_stamp_of_random_instants_and_outside_the_years_it_writes() -> None:
    rng = random.Random(20261130)
    epoch = datetime(1970, 1, 1)
    low, high = MIN_US, MAX_US
    assert fr._EXTENSION is not None
    for _ in range(20000):
        micros = rng.randint(low, high)
        instant = epoch + timedelta(microseconds=micros)
        assert fr._EXTENSION.format_stamp(micros) == f"{instant.year:04d}" + instant.strftime("-%m-%dT%H:%M:%S.%fZ")
    assert fr._EXTENSION.format_stamp(low - 1) is None
    assert fr._EXTENSION.format_stamp(high + 1) is None


# --- differential: random templates and frames -------------------------------------------------------------


def random_device(rng: random.Random) -> WiredDevice:
    points: list[tuple[str, int, int]] = []
    offset = 3
    for _ in range(rng.randint(0, 6)):
        enc = rng.choice(list(_ENCODINGS))
        if rng.random() < 0.1:
            offset = rng.randint(0, offset)  # overlapping or unordered datapoints
        points.append((enc, offset, rng.randint(-7, 6)))
        offset += _ENCODINGS[enc] + rng.choice([0, 0, 0, 1, 2])
    return device(points, rng.choice([FRAME_CHECK_MODBUS_CRC, FRAME_CHECK_NONE]), rng.randint(1, 2**31 - 1))


def random_frame_text(rng: random.Random, dev: WiredDevice) -> str:
    frame_points = [dp for dp in dev.datapoints if dp.encoding != "Bool"]
    end = max((dp.offset + dp.length for dp in frame_points), default=3)
    body = bytearray(rng.randbytes(max(end, 3) + rng.choice([0, 0, 1, 3])))
    body[0], body[1], body[2] = 1, 3, len(body) - 3
    for dp in frame_points:
        if dp.encoding == "Float32" and rng.random() < 0.5:
            special = rng.choice([0.0, -0.0, 1e-45, 3.4e38, 0.1, float("inf"), float("nan"), 123.456])
            struct.pack_into(">f", body, dp.offset, special)
    frame = bytearray(with_crc(bytes(body)) if dev.frame_check == FRAME_CHECK_MODBUS_CRC else body)
    mutation = rng.random()
    if mutation < 0.05 and frame:
        frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
    elif mutation < 0.1:
        frame = frame[: rng.randrange(len(frame) + 1)]
    form = rng.random()
    if form < 0.35:
        text = frame.hex(" ")
    elif form < 0.7:
        text = frame.hex()
    else:
        text = irregular_hex(rng, frame)
    return text.upper() if rng.random() < 0.5 else text


_SEPARATOR_RUNS = ("", "", " ", " ", "  ", "\t", "\r\n", "\n", " \x0b\x0c ")


def irregular_hex(rng: random.Random, frame: bytes) -> str:
    """The frame's pairs with random runs of whitespace around them; sometimes broken (a split byte, a stray
    character) so that the pure path's refusal is compared too."""
    text = rng.choice(_SEPARATOR_RUNS) + "".join(f"{b:02x}" + rng.choice(_SEPARATOR_RUNS) for b in frame)
    if text.strip() and rng.random() < 0.1:
        digits = [i for i, c in enumerate(text) if not c.isspace()]
        at = rng.choice(digits)
        text = text[:at] + rng.choice([" ", "\t", "g", "\xa0", "\x1c"]) + text[at:]
    return text


def test_native_and_pure_paths_agree_on_random_templates_and_frames() -> None:
    rng = random.Random(7)
    low, high = MIN_US, MAX_US
    outcomes = {"records": 0, "dead": 0}
    taken_natively = 0
    irregular = {"records": 0, "native": 0}
    for _ in range(3000):
        dev = random_device(rng)
        FrameLayout.clear_cache()
        for _ in range(5):
            timestamp_us = rng.randint(low, high) if rng.random() < 0.3 else TS + rng.randrange(10**9)
            message = payload(random_frame_text(rng, dev), timestamp_us)
            native = outcome(fr.frame_records, TOPIC, message, dev)
            pure = outcome(fr.pure_frame_records, TOPIC, message, dev)
            assert native == pure, (dev, message)
            outcomes[native[0]] += 1
            direct = native_records(dev, message)
            if direct is not None:
                taken_natively += 1
                assert ("records", direct) == pure, (dev, message)
            assert message.data is not None
            if native[0] == "records" and not _regular_form(message.data):
                irregular["records"] += 1
                irregular["native"] += direct is not None
    # Both kinds of outcome occurred often enough for the comparison to mean something, and the extension
    # itself decoded most of the frames that have records (the others: scales beyond exact doubles), those
    # with irregular whitespace included.
    assert min(outcomes.values()) > 1000, outcomes
    assert taken_natively > 0.9 * outcomes["records"], (taken_natively, outcomes)
    assert irregular["records"] > 1000 and irregular["native"] > 0.9 * irregular["records"], irregular


def _regular_form(text: str) -> bool:
    """Unseparated pairs, or pairs with exactly one space between every two (the controllers' usual forms)."""
    return all(len(pair) == 2 for pair in text.split(" ")) or not any(c.isspace() for c in text)


def test_encoded_frames_round_trip_through_the_native_path() -> None:
    rng = random.Random(11)
    dev = device([("Int16", 3, 2), ("Uint16", 5, 1), ("Int32", 7, 0), ("Float32", 11, 3)])
    taken_natively = 0
    for _ in range(500):
        values = {
            "p0": rng.randint(-32768, 32767) / 100,
            "p1": rng.randint(0, 65535) / 10,
            "p2": float(rng.randint(-(2**31), 2**31 - 1)),
            "p3": struct.unpack(">f", struct.pack(">f", rng.uniform(-1e6, 1e6)))[0] / 1000,
        }
        frame = encode_frame(values, dev.datapoints)
        records = fr.frame_records(TOPIC, payload(frame.hex(" ")), dev)
        taken_natively += native_records(dev, payload(frame.hex(" "))) == records
        # The same frame with irregular whitespace gives the same records, from the extension itself.
        loose = payload("  " + frame.hex("\t").replace("\t", " \t ", 3) + "\r\n")
        assert native_records(dev, loose) == records == fr.pure_frame_records(TOPIC, loose, dev)
        decoded = {f"p{json.loads(v)['datapoint_id'] - 101}": json.loads(v)["value"] for _, v in records}
        for label in ("p0", "p1", "p2"):
            assert decoded[label] == values[label]
        assert decoded["p3"] == pytest.approx(values["p3"], rel=1e-6)
    # Every one of the 500 well-formed frames was decoded by the extension itself.
    assert taken_natively == 500
