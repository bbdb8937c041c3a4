"""Pure conversions of the records the hops hold into the reconciliation's keys: a raw record re-decoded
with the pure per-record step (streaming/decoding/record.py, the processor's own), a decoded record, an
event record, a dead letter's coordinates."""

from __future__ import annotations

import json
from datetime import datetime

from f2_platform.reconciliation.model import EventKey, RawOutcome, ReadingKey
from streaming.decoding.record import TopologyLookup, decode_record
from streaming.errors import DecodeError


def raw_outcome(
    partition: int,
    offset: int,
    key: bytes | None,
    mqtt_topic: str | None,
    value: bytes,
    lookup: TopologyLookup,
    max_payload_bytes: int,
) -> RawOutcome:
    controller = key.decode("utf-8", "replace") if key else ""
    try:
        decoded = decode_record(mqtt_topic, value, lookup, max_payload_bytes)
    except DecodeError as exc:
        return RawOutcome(partition, offset, controller, mqtt_topic, frozenset(), frozenset(), exc.reason)
    readings = frozenset((r.timestamp_us, r.device_id, r.datapoint_id) for r in decoded.readings)
    events = frozenset((e.timestamp_us, e.controller_mac, e.connector, e.component, e.kind) for e in decoded.events)
    return RawOutcome(partition, offset, controller, mqtt_topic, readings, events, None)


def micros(rfc3339: str) -> int:
    moment = datetime.fromisoformat(rfc3339)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def reading_key(value: bytes) -> ReadingKey | None:
    """The key of an f2.decoded record (or of a sink dead letter carrying one); None when it is not one."""
    try:
        data = json.loads(value)
        return (micros(data["timestamp"]), int(data["device_id"]), int(data["datapoint_id"]))
    except (ValueError, KeyError, TypeError):
        return None


def event_key(value: bytes) -> EventKey | None:
    """The key of an f2.events record stored in device_events; None for a presence heartbeat (`seen`, not
    stored as such) or a record that is not an event."""
    try:
        data = json.loads(value)
        if data.get("kind") == "seen":
            return None
        return (
            micros(data["time"]),
            str(data["controller_mac"]),
            int(data["connector"]),
            str(data["component"]),
            str(data["kind"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
