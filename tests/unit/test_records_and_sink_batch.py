"""The processor's record encoding and the sink's record parsing, against values written out by hand."""

from __future__ import annotations

import json

import pytest

from streaming.decoding.decoded_format import encode_readings, rfc3339_from_us
from streaming.decoding.topology import Reading
from streaming.sink.rows import RecordError, copy_text, parse_record

# 2026-03-01 10:00:00.25 UTC in microseconds since the epoch: 1772359200 s * 1e6 + 250000.
TS_US = 1_772_359_200_250_000


def test_rfc3339_keeps_every_microsecond() -> None:
    assert rfc3339_from_us(TS_US) == "2026-03-01T10:00:00.250000Z"
    assert rfc3339_from_us(TS_US + 1) == "2026-03-01T10:00:00.250001Z"
    # Across a second (the whole-second part is cached per second) and around the epoch.
    assert rfc3339_from_us(TS_US + 750_000) == "2026-03-01T10:00:01.000000Z"
    assert rfc3339_from_us(TS_US + 749_999) == "2026-03-01T10:00:00.999999Z"
    assert rfc3339_from_us(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339_from_us(-1) == "1969-12-31T23:59:59.999999Z"


def test_encoded_readings_are_the_decoded_contract() -> None:
    records = encode_readings(
        [Reading(TS_US, 7, 101, 23.52), Reading(TS_US, 7, 102, -1.52), Reading(TS_US, 7, 103, 1e-05)]
    )
    assert [k for k, _ in records] == [b"7:101", b"7:102", b"7:103"]
    assert [json.loads(v) for _, v in records] == [
        {"timestamp": "2026-03-01T10:00:00.250000Z", "device_id": 7, "datapoint_id": 101, "value": 23.52},
        {"timestamp": "2026-03-01T10:00:00.250000Z", "device_id": 7, "datapoint_id": 102, "value": -1.52},
        {"timestamp": "2026-03-01T10:00:00.250000Z", "device_id": 7, "datapoint_id": 103, "value": 1e-05},
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        encode_readings([Reading(TS_US, 1, 2, bad)])


def test_parse_record_accepts_the_contract_and_copy_text_is_tab_separated() -> None:
    row = parse_record(
        b'{"timestamp": "2026-03-01T10:00:00.250000Z", "device_id": 7, "datapoint_id": 101, "value": 23.52}'
    )
    assert row == ("2026-03-01T10:00:00.250000Z", 7, 101, 23.52)
    assert copy_text([row, ("2026-03-01T10:00:01Z", 8, 9, 1.0)]) == (
        b"2026-03-01T10:00:00.250000Z\t7\t101\t23.52\n2026-03-01T10:00:01Z\t8\t9\t1.0\n"
    )


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (None, "empty"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"device_id": 1, "datapoint_id": 2, "value": 3}', "'timestamp' missing"),
        (b'{"timestamp": 5, "device_id": 1, "datapoint_id": 2, "value": 3}', "not a string"),
        (b'{"timestamp": "yesterday", "device_id": 1, "datapoint_id": 2, "value": 3}', "not RFC 3339"),
        (b'{"timestamp": "2026-03-01T10:00:00", "device_id": 1, "datapoint_id": 2, "value": 3}', "no time zone"),
        (b'{"timestamp": "1900-03-01T10:00:00Z", "device_id": 1, "datapoint_id": 2, "value": 3}', "outside"),
        (b'{"timestamp": "2026-03-01T10:00:00Z", "device_id": -1, "datapoint_id": 2, "value": 3}', "device_id"),
        (b'{"timestamp": "2026-03-01T10:00:00Z", "device_id": 1, "datapoint_id": true, "value": 3}', "datapoint_id"),
        (b'{"timestamp": "2026-03-01T10:00:00Z", "device_id": 1, "datapoint_id": 2, "value": "3"}', "finite"),
    ],
)
def test_parse_record_explains_what_is_wrong(raw: bytes | None, fragment: str) -> None:
    with pytest.raises(RecordError, match=fragment):
        parse_record(raw)


def test_copy_text_keeps_the_last_record_of_a_key() -> None:
    first = ("2026-03-01T10:00:00Z", 7, 101, 1.0)
    other = ("2026-03-01T10:00:00Z", 7, 102, 2.0)
    again = ("2026-03-01T10:00:00Z", 7, 101, 3.0)
    assert copy_text([first, other, again]) == (
        b"2026-03-01T10:00:00Z\t7\t101\t3.0\n2026-03-01T10:00:00Z\t7\t102\t2.0\n"
    )
