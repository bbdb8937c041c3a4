"""Re-decoding raw records with the current registry, through the processor's own decoding functions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from confluent_kafka import Message

from f2_platform.defs.reprocessing.window import Window
from streaming import topics
from streaming.decoder import decode_message
from streaming.errors import DecodeError
from streaming.mqtt_topic import parse_topic
from streaming.payload import parse_payload
from streaming.records import header
from streaming.topology import ControllerTopology, Reading

TopologyLoader = Callable[[str], ControllerTopology | None]


class Redecoder:
    """The processor's per-record path (topic, payload, registry lookup, decode), limited to a window and
    a device set. Records that still cannot be decoded are counted by reason: the processor already
    dead-lettered them when they first arrived."""

    def __init__(self, window: Window, load_topology: TopologyLoader, max_payload_bytes: int) -> None:
        self.window = window
        self.max_payload_bytes = max_payload_bytes
        self._load = load_topology
        self._topologies: dict[str, ControllerTopology | None] = {}
        self.records = 0
        self.in_scope = 0
        self.failures: Counter[str] = Counter()

    def topology(self, mac: str) -> ControllerTopology | None:
        # One registry read per controller and run: the registry is what it is for the whole run.
        if mac not in self._topologies:
            self._topologies[mac] = self._load(mac)
        return self._topologies[mac]

    def readings(self, record: Message) -> list[Reading]:
        self.records += 1
        try:
            return self._decode(record)
        except DecodeError as exc:
            self.failures[exc.reason] += 1
            return []

    def _decode(self, record: Message) -> list[Reading]:
        mqtt_topic = header(record.headers(), topics.H_MQTT_TOPIC)
        if mqtt_topic is None:
            raise DecodeError("bad-topic", "the raw record has no f2.mqtt.topic header")
        topic = parse_topic(mqtt_topic)
        if topic.is_reader:
            return []
        payload = parse_payload(record.value() or b"", self.max_payload_bytes)
        if not self.window.start_us <= payload.timestamp_us < self.window.end_us:
            return []
        controller = self.topology(topic.mac)
        if controller is None:
            raise DecodeError("unknown-controller", f"controller {topic.mac} is not in the registry")
        device = controller.resolve(topic.connector, topic.position)
        if device.device_id not in self.window.device_ids:
            return []
        self.in_scope += 1
        readings = decode_message(topic, payload, device)
        if any(not math.isfinite(r.value) for r in readings):
            # As the processor: a non-finite value is not a reading.
            raise DecodeError("malformed-payload", "the frame decodes to a non-finite value")
        return readings
