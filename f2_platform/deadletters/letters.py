"""A dead letter as the processor or the sink wrote it (headers f2.reason, f2.detail, f2.source.*), and how a
payload is shown to an operator: never a credential in clear."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import NamedTuple

from confluent_kafka import Message

from streaming.decoding.payload import redact_reader_payload
from streaming.kafka import topics
from streaming.kafka.records import header
from streaming.mqtt.topic import is_reader

_MAC = re.compile(r"[0-9a-f]{12}")
# Registry mistakes: a dead letter with one of these reasons may decode once the registry is fixed.
REGISTRY_REASONS: tuple[str, ...] = ("unknown-controller", "unknown-connector", "unwired-position", "frame-length")
SHOWN_PAYLOAD_CHARS = 400


class DeadLetter(NamedTuple):
    partition: int  # its own coordinates in f2.deadletter
    offset: int
    at: datetime  # when it was dead-lettered (its Kafka timestamp)
    reason: str
    detail: str
    source_topic: str  # the record it stands for
    source_partition: int
    source_offset: int
    mqtt_topic: str | None
    controller: str | None  # the record key when it is a controller's MAC
    key: bytes | None
    value: bytes

    @property
    def source(self) -> tuple[str, int, int]:
        return self.source_topic, self.source_partition, self.source_offset

    @property
    def replayable(self) -> bool:
        """Only the processor's dead letters (of raw records) can be decoded again; the sink's stand for decoded
        records or events the database refused."""
        return self.source_topic == topics.RAW


def dead_letter(message: Message) -> DeadLetter:
    """The dead letter a consumed f2.deadletter record holds; ValueError when its headers are not the
    contract's."""
    headers = message.headers()
    reason = header(headers, topics.H_REASON)
    source_topic = header(headers, topics.H_SOURCE_TOPIC)
    partition_text = header(headers, topics.H_SOURCE_PARTITION)
    offset_text = header(headers, topics.H_SOURCE_OFFSET)
    if reason is None or source_topic is None or partition_text is None or offset_text is None:
        raise ValueError("a record without f2.reason and f2.source.topic/partition/offset headers")
    key = message.key()
    key_bytes = key.encode() if isinstance(key, str) else key
    mac = key_bytes.decode("ascii", errors="replace") if key_bytes else None
    _, stamp = message.timestamp()
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None
    return DeadLetter(
        partition=partition,
        offset=offset,
        at=datetime.fromtimestamp(stamp / 1000, UTC),
        reason=reason,
        detail=header(headers, topics.H_DETAIL) or "",
        source_topic=source_topic,
        source_partition=int(partition_text),
        source_offset=int(offset_text),
        mqtt_topic=header(headers, topics.H_MQTT_TOPIC),
        controller=mac if mac is not None and _MAC.fullmatch(mac) else None,
        key=key_bytes,
        value=message.value() or b"",
    )


def payload_digest(value: bytes) -> str:
    """A short SHA-256 of the payload as stored: the same record shows the same digest everywhere."""
    return hashlib.sha256(value).hexdigest()[:16]


def shown_payload(mqtt_topic: str | None, value: bytes) -> str:
    """The payload as an operator may see it: on any topic that may be a reader's (mqtt.topic.is_reader), only
    the bridge's redacted form (credential fingerprints) or, for anything else there, its field names; other
    payloads as text, cut to SHOWN_PAYLOAD_CHARS."""
    if (mqtt_topic is None or is_reader(mqtt_topic)) and not _bridge_redacted(value):
        value = redact_reader_payload(value)
    text = value.decode("utf-8", errors="replace")
    return text if len(text) <= SHOWN_PAYLOAD_CHARS else text[:SHOWN_PAYLOAD_CHARS] + "..."


def _bridge_redacted(value: bytes) -> bool:
    """The bridge's canonical reader payload: a JSON object without `data`, whose credential (if any) is a
    fingerprint object."""
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(obj, dict) or "data" in obj:
        return False
    allowed = {"timestamp", "credential", "indicator", "unparsed"}
    if not set(obj) <= allowed:
        return False
    credential = obj.get("credential")
    fingerprint_fields = {"fingerprint", "key_id", "length"}
    return credential is None or (isinstance(credential, dict) and set(credential) <= fingerprint_fields)
