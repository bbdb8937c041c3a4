"""Pure part of the sink: decoded records -> validated rows, and the SQL that stores them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import orjson

# PostgreSQL's timestamptz range is far wider, but readings outside these years are device clock garbage
# that the database would store; anything it cannot store at all is caught by the bisecting retry.
_MIN_YEAR, _MAX_YEAR = 1970, 9999

STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS f2_sink_staging ("
    '"timestamp" timestamptz NOT NULL, device_id integer NOT NULL, datapoint_id integer NOT NULL, '
    "value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
COPY_SQL = 'COPY f2_sink_staging ("timestamp", device_id, datapoint_id, value) FROM STDIN'
# DISTINCT ON keeps one row per key in a batch (the latest record wins), as ON CONFLICT requires.
UPSERT_SQL = """
INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value)
SELECT DISTINCT ON ("timestamp", device_id, datapoint_id) "timestamp", device_id, datapoint_id, value
FROM f2_sink_staging
ORDER BY "timestamp", device_id, datapoint_id
ON CONFLICT ("timestamp", device_id, datapoint_id) DO UPDATE SET value = EXCLUDED.value
WHERE decoded_data.value IS DISTINCT FROM EXCLUDED.value
"""
LATEST_SQL = """
INSERT INTO latest_values (device_id, datapoint_id, "timestamp", value)
SELECT DISTINCT ON (device_id, datapoint_id) device_id, datapoint_id, "timestamp", value
FROM f2_sink_staging
ORDER BY device_id, datapoint_id, "timestamp" DESC
ON CONFLICT (device_id, datapoint_id) DO UPDATE SET "timestamp" = EXCLUDED."timestamp", value = EXCLUDED.value
WHERE latest_values."timestamp" <= EXCLUDED."timestamp"
"""


class RecordError(ValueError):
    """A decoded record whose content cannot become a row (dead-letter it, keep its batch-mates)."""


class Row(NamedTuple):
    timestamp: str
    device_id: int
    datapoint_id: int
    value: float


def copy_text(rows: Iterable[Row]) -> bytes:
    """COPY's text format for validated rows, built in one piece (one write per batch, not one per row).

    Safe without escaping: timestamps passed datetime.fromisoformat (no tabs, newlines or backslashes),
    ids are ints and values finite floats.
    """
    return "".join([f"{r.timestamp}\t{r.device_id}\t{r.datapoint_id}\t{r.value!r}\n" for r in rows]).encode()


def parse_record(value: bytes | None) -> Row:
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
    try:
        parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"timestamp {ts[:40]!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise RecordError(f"timestamp {ts[:40]!r} has no time zone; expected UTC (Z)")
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise RecordError(f"timestamp {ts[:40]!r} is outside {_MIN_YEAR}..{_MAX_YEAR}")
    for name, ident in (("device_id", device_id), ("datapoint_id", datapoint_id)):
        if not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident < 2**31:
            raise RecordError(f"{name} {ident!r} is not a positive 32-bit integer")
    if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
        raise RecordError(f"value {val!r} is not a finite number")
    return Row(ts, device_id, datapoint_id, float(val))
