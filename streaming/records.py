"""Pure encoding of the records the processor writes (CONTRACTS.md: decoded, latest, dead-letter)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from streaming import topics
from streaming.kafka_records import Headers
from streaming.topology import Reading

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339_from_us(timestamp_us: int) -> str:
    # Integer arithmetic: a float of seconds would lose microseconds.
    return (_EPOCH + timedelta(microseconds=timestamp_us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def reading_key(reading: Reading) -> bytes:
    return f"{reading.device_id}:{reading.datapoint_id}".encode()


def reading_value(reading: Reading) -> bytes:
    return json.dumps(
        {
            "timestamp": rfc3339_from_us(reading.timestamp_us),
            "device_id": reading.device_id,
            "datapoint_id": reading.datapoint_id,
            "value": reading.value,
        },
        allow_nan=False,
    ).encode()


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
