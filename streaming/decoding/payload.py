"""MQTT payloads of F2 controllers: a JSON object with a device-clock `timestamp` (docs/domain.md).

Pure, no I/O. `parse_payload` turns the raw bytes into a `Payload` or raises a `DecodeError` whose
reason is the dead-letter class; `redact_reader_payload` makes a reader payload safe to store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final, NamedTuple, NoReturn

import orjson

from streaming.errors import DecodeError

REDACTED: Final[str] = "[redacted]"
# Reader payloads are tiny; above this size redaction does not bother parsing and keeps only the length.
_MAX_REDACT_PARSE_BYTES: Final[int] = 64 * 1024

# Shape check before datetime.fromisoformat, which in 3.11 also accepts forms devices never send
# (date only, week dates, basic format without separators). [0-9] so that non-ASCII digits never match.
# Groups: the date and time to the second, the fraction's digits, the offset.
_TIMESTAMP_RE: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_EXPECTED_TIMESTAMP = "'YYYY-MM-DD HH:MM:SS[.ffffff]' (optionally 'T' separator and 'Z' or ±HH:MM offset)"
_EPOCH: Final = datetime(1970, 1, 1)
_ONE_US: Final = timedelta(microseconds=1)
# The instants datetime can hold, in microseconds since the epoch.
_MIN_US: Final = (datetime.min - _EPOCH) // _ONE_US
_MAX_US: Final = (datetime.max - _EPOCH) // _ONE_US
_MAX_SHOWN = 60
# Tells an absent `data` (status payloads) from an explicit null (a broken sensor payload).
_ABSENT: Final = object()
_new = tuple.__new__


class Payload(NamedTuple):
    """One parsed payload. A NamedTuple, built with tuple.__new__: one per frame on the processor's hot path,
    where a frozen dataclass's constructor cost six times as much."""

    timestamp_us: int  # microseconds since the Unix epoch, UTC
    data: str | None  # the frame as hex text, for sensor components
    fields: dict[str, object]  # every field except timestamp and data


def parse_payload(
    raw: bytes, max_bytes: int, check_object: Callable[[dict[str, object]], None] | None = None
) -> Payload:
    """Parse one MQTT payload; raise DecodeError with the dead-letter reason when it cannot be used.

    `check_object` sees the JSON object before its fields are checked (a reader payload the bridge could not
    read has its own reason, which comes before a missing timestamp)."""
    if len(raw) > max_bytes:
        raise DecodeError("payload-too-large", f"payload has {len(raw)} bytes; the limit is {max_bytes}")
    obj = _load_object(raw)
    if check_object is not None:
        check_object(obj)
    data = obj.pop("data", _ABSENT)
    if data is _ABSENT:
        data = None
    elif not isinstance(data, str):
        raise DecodeError("malformed-payload", f"field 'data' is a JSON {_json_type(data)}; expected a hex string")
    if "timestamp" not in obj:
        raise DecodeError("missing-timestamp", "payload has no 'timestamp' field")
    timestamp_us = parse_timestamp(obj.pop("timestamp"))
    return _new(Payload, (timestamp_us, data, obj))


def parse_timestamp(value: object) -> int:
    """Microseconds since the epoch, UTC, of a device timestamp; naive means UTC."""
    if not isinstance(value, str):
        raise DecodeError(
            "bad-timestamp",
            f"timestamp is a JSON {_json_type(value)}; expected a string {_EXPECTED_TIMESTAMP}",
        )
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise DecodeError("bad-timestamp", f"timestamp {_shown(value)} is not in the format {_EXPECTED_TIMESTAMP}")
    whole, fraction, offset = match.groups()
    try:
        # datetime validates each part; the whole second and the offset repeat from frame to frame and are
        # converted once (this runs for every frame in the processor).
        micros = _second_us(whole) - _offset_us(offset)
    except (ValueError, OverflowError) as exc:
        raise DecodeError("bad-timestamp", f"timestamp {_shown(value)} is not a valid instant: {exc}") from None
    if fraction is not None:
        micros += int(fraction) * 10 ** (6 - len(fraction))
    if not _MIN_US <= micros <= _MAX_US:
        raise DecodeError("bad-timestamp", f"timestamp {_shown(value)} is not a valid instant: date value out of range")
    return micros


@lru_cache(maxsize=4096)
def _second_us(whole: str) -> int:
    """Microseconds since the epoch of 'YYYY-MM-DD HH:MM:SS' (or with 'T'), read as UTC."""
    # Integer timedelta division: exact, unlike float timestamp().
    return (datetime.fromisoformat(whole) - _EPOCH) // _ONE_US


@lru_cache(maxsize=256)
def _offset_us(offset: str | None) -> int:
    """Microseconds an offset ('Z', '+HH:MM', '-HH:MM' or none) is ahead of UTC."""
    if offset is None or offset == "Z":
        return 0
    delta = datetime.fromisoformat("2000-01-01T00:00:00" + offset).utcoffset()
    assert delta is not None
    return delta // _ONE_US


def redact_reader_payload(raw: bytes) -> bytes:
    """A copy of a reader payload without credentials: field names stay, every value but a valid
    `timestamp` becomes "[redacted]"; a payload that is not a JSON object keeps only its length."""
    if len(raw) <= _MAX_REDACT_PARSE_BYTES:
        try:
            obj = _load_object(raw)
        except DecodeError:
            pass
        else:
            redacted: dict[str, object] = {}
            for key, value in obj.items():
                redacted[key] = value if key == "timestamp" and _is_valid_timestamp(value) else REDACTED
            return json.dumps(redacted).encode()
    return json.dumps({"redacted": True, "bytes": len(raw)}).encode()


def _is_valid_timestamp(value: object) -> bool:
    try:
        parse_timestamp(value)
    except DecodeError:
        return False
    return True


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN/Infinity, which are not JSON and which no other consumer could read.
    raise ValueError(f"non-standard JSON constant {name}")


# Built once: json.loads with any keyword argument builds a new decoder per call, doubling its cost.
_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _load_object(raw: bytes) -> dict[str, object]:
    # orjson is four times faster and accepts a subset of what the standard library accepts (UTF-8 only, no
    # NaN, infinities or lone surrogates, nesting to 1024), with the same values except integers beyond 64
    # bits, which it reads as floats (no field the pipeline uses can be one). Whatever it refuses is judged
    # again by the standard library below, which keeps the verdicts and explains them.
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = _load_object_strictly(raw)
    if not isinstance(obj, dict):
        raise DecodeError("malformed-payload", f"payload is a JSON {_json_type(obj)}; expected a JSON object")
    return obj


def _load_object_strictly(raw: bytes) -> object:
    try:
        # Decoding explicitly: json.loads(bytes) would also accept UTF-16 and UTF-32.
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            "malformed-payload", f"payload is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        obj = _JSON.decode(text)
    except RecursionError:
        raise DecodeError("malformed-payload", "payload JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, non-standard constants, over-long integers
        raise DecodeError("malformed-payload", f"payload is not valid JSON: {_one_line(str(exc))}") from None
    return obj


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _shown(text: str) -> str:
    if len(text) > _MAX_SHOWN:
        return repr(text[:_MAX_SHOWN]) + f"... ({len(text)} chars)"
    return repr(text)
