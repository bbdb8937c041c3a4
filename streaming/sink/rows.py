"""Pure part of the sink: decoded records -> validated rows, as COPY text or (natively) COPY binary data."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final

import orjson

from streaming.decoding.decoded_format import VALUE_HEAD, VALUE_MIDDLE, VALUE_TAIL

# PostgreSQL's timestamptz range is far wider, but readings outside these years are device clock garbage
# that the database would store; anything it cannot store at all is caught by the bisecting retry.
_MIN_YEAR, _MAX_YEAR = 1970, 9999
_INT32_END = 2**31


class RecordError(ValueError):
    """A decoded record whose content cannot become a row (dead-letter it, keep its batch-mates)."""


# (timestamp as RFC 3339 text, device_id, datapoint_id, value). A plain tuple: a NamedTuple's constructor
# cost the sink an eighth of its CPU.
Row = tuple[str, int, int, float]


def copy_text(rows: Iterable[Row]) -> bytes:
    """COPY's text format for validated rows, built in one piece (one write per batch, not one per row).

    A key that occurs more than once keeps its last record (the later decoding of a reading wins), so the
    database sees each key once. Safe without escaping: timestamps passed datetime.fromisoformat (no tabs,
    newlines or backslashes), ids are ints and values finite floats.
    """
    last = {(ts, device, datapoint): value for ts, device, datapoint, value in rows}
    return "".join([f"{ts}\t{dev}\t{dp}\t{value!r}\n" for (ts, dev, dp), value in last.items()]).encode()


def _load_extension() -> Callable[..., bytes | None] | None:
    try:
        from streaming.sink import _copy_rows  # type: ignore[attr-defined]
    except ImportError:
        return None
    # None, not an AttributeError at import, when a library built from an older source lacks the function.
    function: Callable[..., bytes | None] | None = getattr(_copy_rows, "copy_binary", None)
    return function


_NATIVE_COPY_BINARY: Final = _load_extension()
NATIVE: Final[bool] = _NATIVE_COPY_BINARY is not None
# The fixed parts of the processor's record around the device id, the datapoint id and the value.
_MIDDLES: Final = tuple(VALUE_MIDDLE.split(b"%d"))


def native_copy_binary(values: list[bytes | None]) -> bytes | None:
    """The records' rows as COPY binary data (for COPY_BINARY_SQL), computed natively; None when the extension
    is not built or when any record is not exactly as the processor writes it (or a key occurs twice): parse
    those with parse_record.

    For records it takes, the database reads the rows it would read from copy_text(parse_record(value) for
    value in values) with COPY_SQL.
    """
    if _NATIVE_COPY_BINARY is None:
        return None
    return _NATIVE_COPY_BINARY(values, VALUE_HEAD, *_MIDDLES, VALUE_TAIL)


def parse_record(value: bytes | None, checked: set[str] | None = None) -> Row:
    """The row of one decoded record, or RecordError saying what is wrong with it.

    `checked` holds timestamps already validated in this batch (a frame's readings share one): each is parsed
    once per batch instead of once per reading.
    """
    if value is None:
        raise RecordError("empty record value; expected the decoded-reading JSON object")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError("not JSON (or not UTF-8); expected the decoded-reading object") from exc
    if not isinstance(data, dict):
        raise RecordError("JSON value is not an object; expected {timestamp, device_id, datapoint_id, value}")
    try:
        ts, device_id, datapoint_id, val = data["timestamp"], data["device_id"], data["datapoint_id"], data["value"]
    except KeyError as exc:
        raise RecordError(
            f"field {exc.args[0]!r} missing; expected timestamp, device_id, datapoint_id, value"
        ) from None
    if not isinstance(ts, str):
        raise RecordError("timestamp is not a string; expected RFC 3339 UTC")
    if checked is None or ts not in checked:
        _check_timestamp(ts)
        if checked is not None:
            checked.add(ts)
    # `type(x) is int` also refuses booleans (JSON true/false), which are ints to isinstance().
    if type(device_id) is not int or not 0 < device_id < _INT32_END:
        raise RecordError(f"device_id {device_id!r} is not a positive 32-bit integer")
    if type(datapoint_id) is not int or not 0 < datapoint_id < _INT32_END:
        raise RecordError(f"datapoint_id {datapoint_id!r} is not a positive 32-bit integer")
    kind = type(val)
    if (kind is not float and kind is not int) or not math.isfinite(val):
        raise RecordError(f"value {val!r} is not a finite number")
    return (ts, device_id, datapoint_id, float(val))


def _check_timestamp(ts: str) -> None:
    try:
        parsed = datetime.fromisoformat(ts)  # Python 3.11 reads "Z" as UTC
    except ValueError:
        raise RecordError(f"timestamp {ts[:40]!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise RecordError(f"timestamp {ts[:40]!r} has no time zone; expected UTC (Z)")
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise RecordError(f"timestamp {ts[:40]!r} is outside {_MIN_YEAR}..{_MAX_YEAR}")
