"""The sink's native COPY formatter (streaming/sink/_copy_rows.c, built by the build backend: setup.py; called
through sink.rows.native_copy_binary).

For a batch it takes, it must return COPY binary data holding the rows the database reads from the pure
path's COPY text; it must take nothing the pure path would refuse, and leave every other batch (None) to the
pure path, which explains each bad record. The expected rows are computed here from the pure path's text,
with datetime and struct, independently of the C. The batches the formatter takes are counted against the
number it must take, so an extension that is missing or declines everything fails here.
"""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime, timedelta

import pytest

from streaming.decoding.decoded_format import encode_readings
from streaming.decoding.topology import Reading
from streaming.sink import rows as sink_batch
from streaming.sink.rows import RecordError, copy_text, native_copy_binary, parse_record

TS = 1_772_359_200_000_042  # 2026-03-01T10:00:00.000042Z
HEAD = b'{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 7, "datapoint_id": '
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# Per row: 4 fields; timestamptz (int64 us since 2000), int4, int4, float8 (IEEE bits), each after its length.
ROW = struct.Struct("!hiqiiiiiQ")

# (microseconds since 2000-01-01 UTC, device_id, datapoint_id, the value's IEEE 754 bits: -0.0 is not 0.0)
Stored = tuple[int, int, int, int]


def bits(value: float) -> int:
    return int.from_bytes(struct.pack("!d", value), "big")


def rows_of_text(text: bytes) -> list[Stored]:
    """The rows PostgreSQL reads from COPY text written by copy_text."""
    rows = []
    for line in text.decode().splitlines():
        ts, device, datapoint, value = line.split("\t")
        micros = (datetime.fromisoformat(ts) - PG_EPOCH) // timedelta(microseconds=1)
        rows.append((micros, int(device), int(datapoint), bits(float(value))))
    return rows


def rows_of_binary(data: bytes) -> list[Stored]:
    """The rows in COPY binary data; fails on anything but the sink's four columns in PostgreSQL's layout."""
    assert data[:11] == SIGNATURE and data[11:19] == bytes(8), data[:19]
    assert data[-2:] == b"\xff\xff" and (len(data) - 21) % ROW.size == 0, len(data)
    rows = []
    for fields, l1, micros, l2, device, l3, datapoint, l4, value_bits in ROW.iter_unpack(data[19:-2]):
        assert (fields, l1, l2, l3, l4) == (4, 8, 4, 4, 8)
        rows.append((micros, device, datapoint, value_bits))
    return rows


def pure(values: list[bytes | None]) -> list[Stored] | None:
    """The rows the pure path stores, or None when it refuses some record."""
    try:
        return rows_of_text(copy_text(parse_record(value) for value in values))
    except RecordError:
        return None


def native(values: list[bytes | None]) -> list[Stored] | None:
    """The rows the extension itself formats, or None when it leaves the batch to the pure path."""
    assert sink_batch.NATIVE, "streaming.sink._copy_rows did not import: `make provision` (uv sync) builds it"
    data = native_copy_binary(values)
    return None if data is None else rows_of_binary(data)


def test_native_extension_is_built() -> None:
    assert sink_batch.NATIVE, "streaming.sink._copy_rows is not built: `make provision` (uv sync) builds it"
    from streaming.sink import _copy_rows  # type: ignore[attr-defined]

    assert _copy_rows.__name__ == "streaming.sink._copy_rows"
    assert _copy_rows.__file__ is not None and _copy_rows.__file__.endswith(".so")


def test_hand_computed_copy_binary() -> None:
    values = [HEAD + b'101, "value": -23.52}', HEAD + b'102, "value": 5.0}', HEAD + b'103, "value": -0.0}']
    values.append(
        b'{"timestamp": "1970-01-01T00:00:00.000000Z", "device_id": 2147483647, "datapoint_id": 1, "value": 1e+16}'
    )
    values.append(b'{"timestamp": "2000-01-01T00:00:00.000001Z", "device_id": 1, "datapoint_id": 1, "value": 0.1}')
    # 2026-03-01 is 9,556 days after 2000-01-01; 1970-01-01 is 10,957 days before it.
    at = (9556 * 86400 + 10 * 3600) * 10**6 + 42
    expected = (
        SIGNATURE
        + bytes(8)
        + ROW.pack(4, 8, at, 4, 7, 4, 101, 8, 0xC037851EB851EB85)  # -23.52
        + ROW.pack(4, 8, at, 4, 7, 4, 102, 8, 0x4014000000000000)  # 5.0
        + ROW.pack(4, 8, at, 4, 7, 4, 103, 8, 0x8000000000000000)  # -0.0
        + ROW.pack(4, 8, -10957 * 86400 * 10**6, 4, 2147483647, 4, 1, 8, 0x4341C37937E08000)  # 1e16
        + ROW.pack(4, 8, 1, 4, 1, 4, 1, 8, 0x3FB999999999999A)  # 0.1
        + b"\xff\xff"
    )
    assert native_copy_binary(values) == expected
    assert pure(values) == rows_of_binary(expected)
    assert native_copy_binary([]) == SIGNATURE + bytes(8) + b"\xff\xff"


@pytest.mark.parametrize(
    "value",
    [
        HEAD + b'101, "value": 1.5 }',  # other whitespace
        HEAD + b'101,"value": 1.5}',
        b'{"device_id": 7, "timestamp": "2026-03-01T10:00:00.000042Z", "datapoint_id": 101, "value": 1.5}',
        HEAD + b'101, "value": 1.5, "unit": "C"}',
        HEAD + b'101, "value": 1.5}\n',
        # Numbers the processor never writes (repr of a float is its only form): integers, other spellings.
        HEAD + b'101, "value": 5}',
        HEAD + b'101, "value": -0}',
        HEAD + b'101, "value": 12345678901234567}',
        HEAD + b'101, "value": 1e16}',
        HEAD + b'101, "value": 1E+16}',
        HEAD + b'101, "value": 1.50}',
        HEAD + b'101, "value": 0.1000000000000000055511151231257827}',
        HEAD + b'101, "value": 1e-400}',
        b'{"timestamp": "2026-03-01T10:00:00.000042+00:00", "device_id": 7, "datapoint_id": 101, "value": 1.5}',
        b'{"timestamp": "2026-03-01 10:00:00.000042Z", "device_id": 7, "datapoint_id": 101, "value": 1.5}',
        b'{"timestamp": "2026-03-01T10:00:00.00004\\u0032Z", "device_id": 7, "datapoint_id": 101, "value": 1.5}',
    ],
)
def test_well_formed_records_in_another_form_take_the_pure_path(value: bytes) -> None:
    assert native_copy_binary([HEAD + b'100, "value": 1.0}', value]) is None
    assert pure([value]) is not None  # still a good record: the pure path stores it


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "empty record"),
        (b"", "not JSON"),
        (b'{"timestamp": "2026-03-01T10:00:00.000042", "device_id": 7, "datapoint_id": 1, "value": 1}', "time zone"),
        (b'{"timestamp": "1969-12-31T23:59:59.999999Z", "device_id": 7, "datapoint_id": 1, "value": 1}', "outside"),
        (b'{"timestamp": "2026-02-29T10:00:00.000000Z", "device_id": 7, "datapoint_id": 1, "value": 1}', "RFC 3339"),
        (b'{"timestamp": "2026-04-31T10:00:00.000000Z", "device_id": 7, "datapoint_id": 1, "value": 1}', "RFC 3339"),
        (b'{"timestamp": "2026-03-01T24:00:00.000000Z", "device_id": 7, "datapoint_id": 1, "value": 1}', "RFC 3339"),
        (b'{"timestamp": "2026-03-01T10:60:00.000000Z", "device_id": 7, "datapoint_id": 1, "value": 1}', "RFC 3339"),
        (b'{"timestamp": "2026-13-01T10:00:00.000000Z", "device_id": 7, "datapoint_id": 1, "value": 1}', "RFC 3339"),
        (b'{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 0, "datapoint_id": 1, "value": 1}', "device_id"),
        (
            b'{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 2147483648, "datapoint_id": 1, "value": 1}',
            "device_id",
        ),
        (b'{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 007, "datapoint_id": 1, "value": 1}', "not JSON"),
        (b'{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 7.0, "datapoint_id": 1, "value": 1}', "device_id"),
        (
            b'{"timestamp": "2026-03-01T10:00:00.000042Z", "device_id": 7, "datapoint_id": -1, "value": 1}',
            "datapoint_id",
        ),
        (HEAD + b'101, "value": true}', "finite number"),
        (HEAD + b'101, "value": NaN}', "not JSON"),
        (HEAD + b'101, "value": 1e999}', "not JSON"),
        (HEAD + b'101, "value": "1.5"}', "finite number"),
        (HEAD + b'101, "value": 1.}', "not JSON"),
        (HEAD + b'101, "value": .5}', "not JSON"),
        (HEAD + b'101, "value": -}', "not JSON"),
    ],
)
def test_bad_records_are_left_to_the_pure_path(value: bytes | None, problem: str) -> None:
    assert native_copy_binary([HEAD + b'100, "value": 1.0}', value]) is None
    with pytest.raises(RecordError, match=problem):
        parse_record(value)


def test_a_key_twice_is_left_to_the_pure_path_which_keeps_the_last() -> None:
    values = [HEAD + b'101, "value": 1.0}', HEAD + b'102, "value": 2.0}', HEAD + b'101, "value": 3.0}']
    assert native_copy_binary(values) is None
    at = (9556 * 86400 + 10 * 3600) * 10**6 + 42
    assert pure(values) == [(at, 7, 101, bits(3.0)), (at, 7, 102, bits(2.0))]


def random_value(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.3:
        return rng.randint(-(2**31), 2**32) / 10 ** rng.randint(0, 6)
    if kind < 0.6:
        return float(struct.unpack(">f", rng.randbytes(4))[0])
    if kind < 0.8:
        return rng.choice([0.0, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 1e-7, 0.1, 123456789012345.6])
    return struct.unpack(">d", rng.randbytes(8))[0]


def test_processor_records_hold_exactly_the_pure_paths_rows() -> None:
    rng = random.Random(5)
    low, high = 0, 253402300799999999  # 1970 .. 9999-12-31T23:59:59.999999
    taken = must_take = 0
    for _ in range(300):
        readings = []
        for _ in range(rng.randint(1, 200)):
            value = random_value(rng)
            if value != value or value in (float("inf"), float("-inf")):
                continue
            ts = rng.randint(low, high) if rng.random() < 0.2 else TS + rng.randrange(10**8)
            readings.append(Reading(ts, rng.randint(1, 2**31 - 1), rng.randint(1, 2**31 - 1), value))
        values: list[bytes | None] = [value for _, value in encode_readings(readings)]
        expected = pure(values)
        got = native(values)
        if len({(r.timestamp_us, r.device_id, r.datapoint_id) for r in readings}) == len(readings):
            must_take += 1
            assert got == expected
        else:
            assert got is None
        taken += got is not None
    # Every batch without a repeated key was formatted by the extension itself, and most batches are such.
    assert taken == must_take > 250, (taken, must_take)


def test_mutated_records_are_never_taken_when_the_pure_path_refuses_or_differs() -> None:
    rng = random.Random(9)
    taken = refused = 0
    for _ in range(20000):
        reading = Reading(TS + rng.randrange(10**12), rng.randint(1, 99999), rng.randint(1, 999), random_value(rng))
        if reading.value != reading.value or abs(reading.value) == float("inf"):
            continue
        value = bytearray(encode_readings([reading])[0][1])
        for _ in range(rng.randint(1, 2)):
            position = rng.randrange(len(value))
            value[position] = rng.choice(b'0123456789.-+eE" :,{}TZxa\\')
        got = native([bytes(value)])
        expected = pure([bytes(value)])
        if got is not None:
            taken += 1
            assert got == expected, bytes(value)
        elif expected is None:
            refused += 1
    assert taken > 1000 and refused > 1000, (taken, refused)


def test_the_benchs_reference_writes_the_bytes_the_sink_writes_for_its_portfolio() -> None:
    from bench.fleet import Portfolio

    portfolio = Portfolio(first_device_id=50_000_000, base_us=TS, sensors=1000)
    data, rows = portfolio.copy_binary(990, 30)  # frames wrap around to the first sensor
    values: list[bytes | None] = [value for _, value in portfolio.decoded_records(990, 30)]
    assert rows == len(values) == 90
    assert native_copy_binary(values) == data
    assert rows_of_binary(data) == pure(values)
