"""Re-decoding raw records with the current registry, through the processor's own per-record step
(streaming/decoding/record.py), limited to a window and a device set."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from confluent_kafka import Message

from f2_platform.defs.reprocessing.window import Window
from streaming.decoding.record import readings_of, resolve_record
from streaming.decoding.topology import ControllerTopology, Reading
from streaming.errors import DecodeError
from streaming.kafka import topics
from streaming.kafka.records import header

TopologyLoader = Callable[[str], ControllerTopology | None]


class Redecoder:
    """Only the window's records count: a record is in scope when its device timestamp lies in the window and
    the registry wires one of the chosen devices at its topic. In-scope records that still cannot be decoded
    are counted by reason (the processor already dead-lettered them when they first arrived). Everything else
    read from f2.raw (other devices, other times, records whose topic, payload or controller cannot be
    resolved, so that they belong to no chosen device) is skipped uncounted: what other traffic holds never
    shows in a run's figures."""

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
        mqtt_topic = header(record.headers(), topics.H_MQTT_TOPIC)
        try:
            resolved = resolve_record(mqtt_topic, record.value() or b"", self.topology, self.max_payload_bytes)
        except DecodeError:
            # No timestamp, or no wired device at its topic: it is none of the chosen devices' records.
            return []
        if resolved.device is None:
            # A status or reader message of a component the registry does not know: events only, no readings.
            return []
        if not self.window.start_us <= resolved.payload.timestamp_us < self.window.end_us:
            return []
        if resolved.device.device_id not in self.window.device_ids:
            return []
        self.in_scope += 1
        try:
            return readings_of(resolved)
        except DecodeError as exc:
            self.failures[exc.reason] += 1
            return []
