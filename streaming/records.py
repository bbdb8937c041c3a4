"""Pure encoding of the records the processor writes (CONTRACTS.md: decoded, latest, dead-letter)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from streaming import topics
from streaming.kafka_records import Headers
from streaming.topology import Reading

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339_from_us(timestamp_us: int) -> str:
    # Integer arithmetic: a float of seconds would lose microseconds.
    return (_EPOCH + timedelta(microseconds=timestamp_us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_readings(readings: list[Reading]) -> list[tuple[bytes, bytes]]:
    """(key, value) records for one frame's readings; the shared timestamp is formatted once.

    The value is the JSON json.dumps would write (floats by repr), built from a template: this runs for
    every reading on the processor's hot path.
    """
    out: list[tuple[bytes, bytes]] = []
    stamp_us: int | None = None
    stamp = ""
    for r in readings:
        if r.timestamp_us != stamp_us:
            stamp_us, stamp = r.timestamp_us, rfc3339_from_us(r.timestamp_us)
        value = float(r.value)
        if not math.isfinite(value):
            raise ValueError(f"datapoint {r.datapoint_id} decoded to {value!r}")
        out.append(
            (
                f"{r.device_id}:{r.datapoint_id}".encode(),
                f'{{"timestamp": "{stamp}", "device_id": {r.device_id}, "datapoint_id": {r.datapoint_id}, '
                f'"value": {value!r}}}'.encode(),
            )
        )
    return out


def dead_letter_headers(
    reason: str,
    detail: str,
    source_topic: str,
    partition: int,
    offset: int,
    mqtt_topic: str | None,
) -> Headers:
    headers: Headers = [
        (topics.H_REASON, reason.encode()),
        (topics.H_DETAIL, " ".join(detail.split())[:1000].encode()),
        (topics.H_SOURCE_TOPIC, source_topic.encode()),
        (topics.H_SOURCE_PARTITION, str(partition).encode()),
        (topics.H_SOURCE_OFFSET, str(offset).encode()),
    ]
    if mqtt_topic is not None:
        headers.append((topics.H_MQTT_TOPIC, mqtt_topic.encode()))
    return headers


def header(headers: Headers | dict[str, str | bytes | None] | None, name: str) -> str | None:
    items = headers.items() if isinstance(headers, dict) else (headers or ())
    for key, value in items:
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    return None
