"""One raw record to its readings and events, or to the reason it has none: the per-record step of the
processor and of reprocessing (f2_platform/defs/reprocessing), pure but for the topology lookup it is handed.

The steps and their dead-letter reasons (docs/domain.md, "Records that cannot be decoded"): the MQTT topic
header (`bad-topic`), the topic grammar (`bad-topic`), the payload (`payload-too-large`, `malformed-payload`
[a reader payload the bridge could not read comes first], `missing-timestamp`, `bad-timestamp`), then by the
component's kind:

- a sensor frame: the controller (`unknown-controller`), the connector and pin (`unknown-connector`,
  `unwired-position`), then the frame (`bad-hex`, `frame-length`, `crc`, `malformed-payload`);
- a status or reader message: its events (a non-boolean status field or a reader payload not in the bridge's
  redacted form: `malformed-payload`), then its readings where the registry wires a device whose template has
  those fields as Bool datapoints (`malformed-payload`). The registry is never a reason to drop such a message:
  a component it does not know still gives its events, with null registry ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from streaming.decoding.events import Event, check_reader_payload, message_events
from streaming.decoding.message import decode_message
from streaming.decoding.payload import Payload, parse_payload, redact_reader_payload
from streaming.decoding.topology import ControllerTopology, Reading, WiredDevice
from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic, is_reader, parse_topic

TopologyLookup = Callable[[str], ControllerTopology | None]

_new = tuple.__new__
NO_TOPIC_HEADER = "the raw record has no f2.mqtt.topic header; only the bridge should write to f2.raw"


class Resolved(NamedTuple):
    """A raw record whose topic and payload are valid, with what the registry knows of it."""

    topic: MqttTopic
    payload: Payload
    # The device wired at the topic's connector and position: always set for a sensor frame; None for a
    # status or reader message of a component the registry does not know.
    device: WiredDevice | None
    controller: ControllerTopology | None


class Decoded(NamedTuple):
    readings: list[Reading]
    events: list[Event]


def resolve_record(mqtt_topic: str | None, value: bytes, lookup: TopologyLookup, max_payload_bytes: int) -> Resolved:
    """The record's topic, payload and registry entries; DecodeError with the dead-letter reason when it
    cannot be used (for a status or reader message, never because of the registry)."""
    if mqtt_topic is None:
        raise DecodeError("bad-topic", NO_TOPIC_HEADER)
    topic = parse_topic(mqtt_topic)
    if topic.carries_frame:
        payload = parse_payload(value, max_payload_bytes)
        controller = lookup(topic.mac)
        if controller is None:
            raise DecodeError("unknown-controller", f"controller {topic.mac} is not in the registry; register it first")
        # tuple.__new__: a NamedTuple's own constructor costs twice as much, and this runs for every frame.
        return _new(Resolved, (topic, payload, controller.resolve(topic.connector, topic.position), controller))
    payload = parse_payload(value, max_payload_bytes, check_reader_payload if topic.is_reader else None)
    controller = lookup(topic.mac)
    device = None if controller is None else controller.wired.get((topic.connector, topic.position))
    return _new(Resolved, (topic, payload, device, controller))


def readings_of(resolved: Resolved) -> list[Reading]:
    """The readings of a resolved record (none where no device is wired); DecodeError when its frame or status
    fields cannot be decoded."""
    if resolved.device is None:
        return []
    readings = decode_message(resolved.topic, resolved.payload, resolved.device)
    for reading in readings:
        if not math.isfinite(reading.value):
            # A Float32 NaN or infinity: not a reading, and not representable in the decoded contract.
            raise DecodeError(
                "malformed-payload",
                f"the frame decodes to a non-finite value ({reading.value!r} for datapoint "
                f"{reading.datapoint_id}); check the sensor",
            )
    return readings


def status_outputs(resolved: Resolved, mqtt_topic: str) -> Decoded:
    """Readings and events of a status or reader message, both or neither (DecodeError)."""
    topic, payload, device, controller = resolved
    events = message_events(topic, payload, device, controller, mqtt_topic)
    return Decoded(readings_of(resolved), events)


def decode_record(mqtt_topic: str | None, value: bytes, lookup: TopologyLookup, max_payload_bytes: int) -> Decoded:
    """Readings and events of one raw record; DecodeError with the dead-letter reason when it has none to
    give. (The processor takes the same steps, with the native decoder for sensor frames.)"""
    resolved = resolve_record(mqtt_topic, value, lookup, max_payload_bytes)
    if resolved.topic.carries_frame:
        return Decoded(readings_of(resolved), [])
    assert mqtt_topic is not None  # resolve_record refuses a record without one
    return status_outputs(resolved, mqtt_topic)


def dead_letter_value(mqtt_topic: str | None, value: bytes) -> bytes:
    """What a dead letter may carry of the record: the payload, with credentials redacted wherever the topic
    may belong to a reader (mqtt.topic.is_reader, deliberately broader than a valid reader topic)."""
    if mqtt_topic is not None and is_reader(mqtt_topic):
        return redact_reader_payload(value)
    return value
