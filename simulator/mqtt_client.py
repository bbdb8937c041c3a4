"""One simulated controller's MQTT connection (QoS 1): it publishes, and hands each message the broker
acknowledged to the ledger."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from simulator.endpoints import Message
from simulator.ledger import Ledger, LedgerEvent, Reading
from streaming.settings import ConnectionSettings


@dataclass(frozen=True)
class DeviceIdentity:
    """How one simulated controller authenticates: its enrolled certificate, or the internal user."""

    certfile: Path | None = None
    keyfile: Path | None = None


class ControllerClient:
    """One controller's MQTT connection; tracks its unacknowledged publishes for the ledger."""

    def __init__(
        self, mac: str, conn: ConnectionSettings, ledger: Ledger, identity: DeviceIdentity | None = None
    ) -> None:
        self.mac = mac
        self.ledger = ledger
        self.pending: dict[int, Message] = {}
        self.early: dict[int, bool] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.acked = 0
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"f2-sim-{mac}", protocol=mqtt.MQTTv5)
        port = conn.mqtt_port
        if identity is not None and identity.certfile is not None:
            client.tls_set(ca_certs=str(conn.ca_cert), certfile=str(identity.certfile), keyfile=str(identity.keyfile))
            port = conn.mqtt_tls_port
        elif conn.mqtt_username:
            client.username_pw_set(conn.mqtt_username, conn.mqtt_password)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = lambda c, u, f, rc, p: self.connected.set() if not rc.is_failure else None
        client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        client.on_publish = self._on_publish
        client.connect_async(conn.mqtt_host, port, keepalive=30)
        client.loop_start()
        self.client = client

    def publish(self, topic: str, payload: bytes, readings: list[Reading], events: list[LedgerEvent]) -> None:
        # paho holds its own lock while calling on_publish: never hold ours across client.publish().
        info = self.client.publish(topic, payload, qos=1)
        entry = (topic, payload, readings, events)
        with self.lock:
            early = self.early.pop(info.mid, None)
            if early is None:
                self.pending[info.mid] = entry
        if early is not None:
            self._acknowledged(entry, early)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: mqtt.ReasonCode, props: object) -> None:
        with self.lock:
            entry = self.pending.pop(mid, None)
            if entry is None:
                # The broker answered before publish() returned and recorded the message.
                self.early[mid] = not rc.is_failure
                return
        self._acknowledged(entry, not rc.is_failure)

    def _acknowledged(self, entry: Message, ok: bool) -> None:
        if ok:
            self.acked += 1
            self.ledger.write(*entry)

    def unacked(self) -> int:
        with self.lock:
            return len(self.pending)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
