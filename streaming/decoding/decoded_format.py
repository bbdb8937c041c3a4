"""The f2.decoded record format (docs/contracts.md): one reading as the JSON the processor writes and the
sink reads. Pure; shared by the pure encoder below, the native decoder and the sink's native COPY formatter."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from streaming.decoding.topology import Reading

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The decoded record's JSON in three parts, shared with the native path (streaming/decoding/native.py):
# before the timestamp, between the timestamp and the value (per datapoint), after the value.
VALUE_HEAD = b'{"timestamp": "'
VALUE_MIDDLE = b'", "device_id": %d, "datapoint_id": %d, "value": '
VALUE_TAIL = b"}"
KEY = b"%d:%d"
_VALUE = VALUE_HEAD + b"%s" + VALUE_MIDDLE + b"%r" + VALUE_TAIL


def rfc3339_from_us(timestamp_us: int) -> str:
    # Integer arithmetic: a float of seconds would lose microseconds. The whole-second part is formatted
    # once per second (a batch's frames share a few seconds): this runs once per frame in the processor.
    seconds, micros = divmod(timestamp_us, 1_000_000)
    return f"{_second_text(seconds)}.{micros:06d}Z"


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()[:19]  # YYYY-MM-DDTHH:MM:SS


def encode_readings(readings: list[Reading]) -> list[tuple[bytes, bytes]]:
    """(key, value) records for one frame's readings; the shared timestamp is formatted once.

    The value is the JSON json.dumps would write (floats by repr), built from a template: this runs for
    every reading on the processor's hot path.
    """
    out: list[tuple[bytes, bytes]] = []
    stamp_us: int | None = None
    stamp = b""
    for timestamp_us, device_id, datapoint_id, raw in readings:
        if timestamp_us != stamp_us:
            stamp_us, stamp = timestamp_us, rfc3339_from_us(timestamp_us).encode()
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"datapoint {datapoint_id} decoded to {value!r}")
        # bytes %-formatting: %r of a float is its repr, as json.dumps writes it.
        out.append((KEY % (device_id, datapoint_id), _VALUE % (stamp, device_id, datapoint_id, value)))
    return out
