"""From a parsed topic, a parsed payload and the wired device to readings: the processor's pure core."""

from __future__ import annotations

from streaming.decoding.frames import decode_frame, decode_status
from streaming.decoding.hex import parse_hex
from streaming.decoding.payload import Payload
from streaming.decoding.topology import Reading, WiredDevice
from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic


def decode_message(topic: MqttTopic, payload: Payload, device: WiredDevice) -> list[Reading]:
    """Readings of one MQTT message; DecodeError (with its dead-letter reason) when it has none to give.

    `reader-N` messages carry credentials and are never decoded: they yield no readings.
    """
    if topic.carries_frame:
        if payload.data is None:
            raise DecodeError(
                "malformed-payload",
                f"{topic.component} payload has no 'data' field; expected the frame as hex",
            )
        return decode_frame(parse_hex(payload.data), device, payload.timestamp_us)
    if topic.is_reader:
        return []
    return decode_status(payload.fields, device, payload.timestamp_us)
