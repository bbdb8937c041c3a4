"""One raw record to readings, or to the reason it has none: the per-record step of the processor and of
reprocessing (f2_platform/defs/reprocessing), pure but for the topology lookup it is handed.

The steps and their dead-letter reasons (docs/domain.md, "Records that cannot be decoded"): the MQTT topic
header (`bad-topic`), the topic grammar (`bad-topic`), reader credentials (ignored by rule: never decoded),
the payload (`payload-too-large`, `malformed-payload`, `missing-timestamp`, `bad-timestamp`), the controller
(`unknown-controller`), the connector and pin (`unknown-connector`, `unwired-position`), then the frame or the
status fields (`bad-hex`, `frame-length`, `crc`, `malformed-payload`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from streaming.decoding.message import decode_message
from streaming.decoding.payload import Payload, parse_payload, redact_reader_payload
from streaming.decoding.topology import ControllerTopology, Reading, WiredDevice
from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic, is_reader, parse_topic

TopologyLookup = Callable[[str], ControllerTopology | None]

_new = tuple.__new__
NO_TOPIC_HEADER = "the raw record has no f2.mqtt.topic header; only the bridge should write to f2.raw"


class Resolved(NamedTuple):
    """A raw record whose topic, payload and wired device are known: what decoding needs."""

    topic: MqttTopic
    payload: Payload
    device: WiredDevice


def resolve_record(
    mqtt_topic: str | None, value: bytes, lookup: TopologyLookup, max_payload_bytes: int
) -> Resolved | None:
    """The record's topic, payload and wired device; None for a reader's message (credentials are never
    decoded); DecodeError with the dead-letter reason when it cannot be decoded."""
    if mqtt_topic is None:
        raise DecodeError("bad-topic", NO_TOPIC_HEADER)
    topic = parse_topic(mqtt_topic)
    if topic.is_reader:
        return None
    payload = parse_payload(value, max_payload_bytes)
    controller = lookup(topic.mac)
    if controller is None:
        raise DecodeError("unknown-controller", f"controller {topic.mac} is not in the registry; register it first")
    # tuple.__new__: a NamedTuple's own constructor costs twice as much, and this runs for every record.
    return _new(Resolved, (topic, payload, controller.resolve(topic.connector, topic.position)))


def readings_of(resolved: Resolved) -> list[Reading]:
    """The readings of a resolved record; DecodeError when its frame or status fields cannot be decoded."""
    readings = decode_message(*resolved)
    for reading in readings:
        if not math.isfinite(reading.value):
            # A Float32 NaN or infinity: not a reading, and not representable in the decoded contract.
            raise DecodeError(
                "malformed-payload",
                f"the frame decodes to a non-finite value ({reading.value!r} for datapoint "
                f"{reading.datapoint_id}); check the sensor",
            )
    return readings


def decode_record(
    mqtt_topic: str | None, value: bytes, lookup: TopologyLookup, max_payload_bytes: int
) -> list[Reading] | None:
    """Readings of one raw record; None when it is ignored by rule (a reader's credentials); DecodeError with
    the dead-letter reason when it cannot be decoded."""
    resolved = resolve_record(mqtt_topic, value, lookup, max_payload_bytes)
    return None if resolved is None else readings_of(resolved)


def dead_letter_value(mqtt_topic: str | None, value: bytes) -> bytes:
    """What a dead letter may carry of the record: the payload, with credentials redacted wherever the topic
    may belong to a reader (mqtt.topic.is_reader, deliberately broader than a valid reader topic)."""
    if mqtt_topic is not None and is_reader(mqtt_topic):
        return redact_reader_payload(value)
    return value
