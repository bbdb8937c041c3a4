from __future__ import annotations

import calendar
import json

import pytest

from streaming.decoding.payload import Payload, parse_payload, redact_reader_payload
from streaming.errors import DecodeError

MAX = 4096


def epoch_us(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> int:
    """Microseconds since the epoch from calendar.timegm, independently of the code under test."""
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) * 1_000_000 + micro


def payload(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_sensor_payload() -> None:
    raw = payload(timestamp="2023-05-25 15:13:10.543400", data="01 03 0C 32 30")
    assert parse_payload(raw, MAX) == Payload(epoch_us(2023, 5, 25, 15, 13, 10, 543400), "01 03 0C 32 30", {})


def test_status_payload_keeps_other_fields() -> None:
    raw = payload(timestamp="2026-03-01 10:03:00.000000", **{"door-sensor-1": False, "door-sensor-2": True})
    parsed = parse_payload(raw, MAX)
    assert parsed.timestamp_us == epoch_us(2026, 3, 1, 10, 3, 0)
    assert parsed.data is None
    assert parsed.fields == {"door-sensor-1": False, "door-sensor-2": True}


def test_known_epoch_values() -> None:
    # 1_700_000_000 s is 2023-11-14 22:13:20 UTC.
    assert parse_payload(payload(timestamp="2023-11-14 22:13:20"), MAX).timestamp_us == 1_700_000_000_000_000
    assert parse_payload(payload(timestamp="1970-01-01 00:00:00"), MAX).timestamp_us == 0
    assert parse_payload(payload(timestamp="1969-12-31 23:59:59.999999"), MAX).timestamp_us == -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01 10:00:00", epoch_us(2026, 3, 1, 10, 0, 0)),
        ("2026-03-01 10:00:00.5", epoch_us(2026, 3, 1, 10, 0, 0, 500000)),
        ("2026-03-01 10:00:00.250", epoch_us(2026, 3, 1, 10, 0, 0, 250000)),
        ("2026-03-01 10:00:00.000001", epoch_us(2026, 3, 1, 10, 0, 0, 1)),
        ("2026-03-01T10:00:00.250000", epoch_us(2026, 3, 1, 10, 0, 0, 250000)),
        ("2026-03-01T10:00:00Z", epoch_us(2026, 3, 1, 10, 0, 0)),
        ("2026-03-01 10:00:00.123456Z", epoch_us(2026, 3, 1, 10, 0, 0, 123456)),
        ("2026-03-01T10:00:00+00:00", epoch_us(2026, 3, 1, 10, 0, 0)),
        ("2026-03-01T12:30:00+02:30", epoch_us(2026, 3, 1, 10, 0, 0)),
        ("2026-03-01T00:00:00-05:00", epoch_us(2026, 3, 1, 5, 0, 0)),
        ("2024-02-29 23:59:59", epoch_us(2024, 2, 29, 23, 59, 59)),
    ],
)
def test_timestamp_formats(text: str, expected: int) -> None:
    assert parse_payload(payload(timestamp=text), MAX).timestamp_us == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01",
        "2026-03-01 10:00",
        "2026/03/01 10:00:00",
        "01-03-2026 10:00:00",
        "2026-03-01 10:00:00.1234567",
        "2026-03-01 10:00:00.",
        "2026-03-01  10:00:00",
        "2026-03-01t10:00:00",
        "2026-03-01 10:00:00z",
        "2026-03-01 10:00:00+0100",
        "2026-03-01 10:00:00 UTC",
        " 2026-03-01 10:00:00",
        "20260301T100000",
        "2026-W09-7 10:00:00",
        "2023-02-29 10:00:00",
        "2026-13-01 10:00:00",
        "2026-04-31 10:00:00",
        "2026-03-01 24:00:00",
        "2026-03-01 10:60:00",
        "2026-03-01 10:00:60",
        "2026-03-01 10:00:00+24:00",
        "0001-01-01 00:00:00+01:00",
        "\u0662\u0660\u0662\u0666-03-01 10:00:00",
        "",
        1_700_000_000,
        1.7e9,
        None,
        True,
        ["2026-03-01 10:00:00"],
        {"t": "2026-03-01 10:00:00"},
    ],
)
def test_bad_timestamp(value: object) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_payload(payload(timestamp=value), MAX)
    assert caught.value.reason == "bad-timestamp"
    assert "\n" not in caught.value.detail


def test_bad_timestamp_detail_names_the_expected_format() -> None:
    with pytest.raises(DecodeError) as caught:
        parse_payload(payload(timestamp="yesterday"), MAX)
    assert "'yesterday'" in caught.value.detail
    assert "YYYY-MM-DD HH:MM:SS" in caught.value.detail


def test_missing_timestamp() -> None:
    with pytest.raises(DecodeError) as caught:
        parse_payload(payload(data="01 03 00"), MAX)
    assert caught.value.reason == "missing-timestamp"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"timestamp": "2026-03-01 10:00:00"',
        b'{"timestamp": "2026-03-01 10:00:00"} trailing',
        b'["timestamp", "2026-03-01 10:00:00"]',
        b'"2026-03-01 10:00:00"',
        b"42",
        b"null",
        b'{"timestamp": "2026-03-01 10:00:00", "data": 1234}',
        b'{"timestamp": "2026-03-01 10:00:00", "data": null}',
        b'{"timestamp": "2026-03-01 10:00:00", "data": ["01", "03"]}',
        b'{"timestamp": "2026-03-01 10:00:00", "value": NaN}',
        b'{"timestamp": "2026-03-01 10:00:00", "value": Infinity}',
        b'{"timestamp": "2026-03-01 10:00:00", "value": 1' + b"0" * 5000 + b"}",
        b'{"timestamp": "2026-03-01 10:00:00", "name": "\xff\xfe"}',
        b"\xef\xbb\xbf" + b'{"timestamp": "2026-03-01 10:00:00"}',
        # Valid JSON in UTF-16: json.loads(bytes) would accept it; the contract is UTF-8.
        '{"timestamp": "2026-03-01 10:00:00"}'.encode("utf-16"),
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_payload(raw: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_payload(raw, len(raw) + 1)
    assert caught.value.reason == "malformed-payload"
    assert "\n" not in caught.value.detail


def test_payload_too_large_is_checked_before_parsing() -> None:
    raw = b"x" * 101
    with pytest.raises(DecodeError) as caught:
        parse_payload(raw, 100)
    assert caught.value.reason == "payload-too-large"
    assert "101" in caught.value.detail
    assert "100" in caught.value.detail


def test_payload_at_the_limit_is_accepted() -> None:
    raw = payload(timestamp="2026-03-01 10:00:00")
    assert parse_payload(raw, len(raw)).timestamp_us == epoch_us(2026, 3, 1, 10, 0, 0)


def test_unicode_field_values_survive() -> None:
    raw = payload(timestamp="2026-03-01 10:00:00", note="température °C")
    assert parse_payload(raw, MAX).fields == {"note": "température °C"}


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        # JSON the fast parser refuses but the standard accepts: the verdict and the values stay the same.
        (b'{"timestamp": "2026-03-01 10:00:00", "note": "\\ud800"}', {"note": "\ud800"}),
        (b'{"timestamp": "2026-03-01 10:00:00", "reading": 1e400}', {"reading": float("inf")}),
        (b'{"timestamp": "2026-03-01 10:00:00", "count": 18446744073709551616}', {"count": 2**64}),
    ],
)
def test_json_the_fast_parser_refuses_is_judged_as_before(raw: bytes, fields: dict[str, object]) -> None:
    parsed = parse_payload(raw, MAX)
    assert parsed.timestamp_us == epoch_us(2026, 3, 1, 10, 0, 0)
    assert parsed.fields == fields


def test_timestamps_sharing_a_second_keep_their_own_fraction_and_offset() -> None:
    # The whole second and the offset are converted once each: every combination must still be exact.
    texts = {
        "2026-03-01T10:00:00Z": epoch_us(2026, 3, 1, 10, 0, 0),
        "2026-03-01T10:00:00.5Z": epoch_us(2026, 3, 1, 10, 0, 0, 500000),
        "2026-03-01T10:00:00.000007+01:00": epoch_us(2026, 3, 1, 9, 0, 0, 7),
        "2026-03-01 10:00:00.25-00:30": epoch_us(2026, 3, 1, 10, 30, 0, 250000),
        "2026-03-01T11:00:00.5+01:00": epoch_us(2026, 3, 1, 10, 0, 0, 500000),
    }
    for _ in range(2):
        for text, expected in texts.items():
            assert parse_payload(payload(timestamp=text), MAX).timestamp_us == expected, text


def test_an_instant_beyond_the_calendar_is_a_bad_timestamp() -> None:
    for text in ("9999-12-31T23:59:59.999999-00:01", "0001-01-01T00:00:00.5+00:01"):
        with pytest.raises(DecodeError) as caught:
            parse_payload(payload(timestamp=text), MAX)
        assert caught.value.reason == "bad-timestamp", text
        assert "not a valid instant" in caught.value.detail


# ---------------------------------------------------------------------------------------- redaction


def test_redaction_keeps_only_field_names_and_a_valid_timestamp() -> None:
    raw = payload(timestamp="2026-03-01 10:00:00.000000", qr="QR-SECRET-123", nfc={"uid": "04A1B2C3D4"})
    redacted = redact_reader_payload(raw)
    assert json.loads(redacted) == {
        "timestamp": "2026-03-01 10:00:00.000000",
        "qr": "[redacted]",
        "nfc": "[redacted]",
    }
    for secret in (b"QR-SECRET-123", b"04A1B2C3D4", b"uid"):
        assert secret not in redacted


@pytest.mark.parametrize("timestamp", ["CARD-0042-SECRET", 424242424242, ["CARD-0042-SECRET"], None])
def test_redaction_also_hides_a_timestamp_that_is_not_one(timestamp: object) -> None:
    redacted = redact_reader_payload(payload(timestamp=timestamp, code="1234"))
    assert json.loads(redacted) == {"timestamp": "[redacted]", "code": "[redacted]"}
    assert b"CARD-0042" not in redacted
    assert b"424242424242" not in redacted


@pytest.mark.parametrize(
    "raw",
    [
        b"CARD-0042-SECRET",
        b'["CARD-0042-SECRET"]',
        b'"CARD-0042-SECRET"',
        b'{"qr": "CARD-0042-SECRET"',
        b"\xff\xfeCARD-0042-SECRET",
        b"",
    ],
)
def test_redaction_of_an_unparseable_payload_keeps_only_its_length(raw: bytes) -> None:
    assert redact_reader_payload(raw) == f'{{"redacted": true, "bytes": {len(raw)}}}'.encode()


def test_redaction_of_a_huge_payload_does_not_parse_it() -> None:
    raw = payload(timestamp="2026-03-01 10:00:00", qr="S" * 200_000)
    assert redact_reader_payload(raw) == f'{{"redacted": true, "bytes": {len(raw)}}}'.encode()


def test_redaction_output_is_json() -> None:
    redacted = redact_reader_payload(payload(timestamp="2026-03-01 10:00:00", **{'weird "key"\n': 1}))
    assert json.loads(redacted) == {"timestamp": "2026-03-01 10:00:00", 'weird "key"\n': "[redacted]"}
