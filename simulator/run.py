"""`f2 simulate`: a fleet of F2 controllers publishing real MQTT traffic (QoS 1) as docs/domain.md describes.

Each controller has its own MQTT connection. With --ledger, every message the broker acknowledged is written
as one JSON line with the readings it carries (computed from the values the simulator encoded, not by the
platform's decoder), so the database can be reconciled against what the devices really sent.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import paho.mqtt.client as mqtt
import psycopg

from f2_platform.registry.sample import CONTROLLERS, WiringSpec
from simulator.frames import encode_frame
from simulator.values import SensorModel, toggled
from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.hex import format_hex
from streaming.decoding.topology import ControllerTopology, WiredDevice
from streaming.decoding.topology_store import TOPOLOGY_SQL, build_topology
from streaming.mqtt.topic import build_topic
from streaming.settings import ConnectionSettings

log = logging.getLogger("f2.simulate")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

STATUS_TEMPLATES = {"DS-2": ("access-control-mode", "door-sensors"), "MS-1": ("alarm-mode", "motion-sensor")}


def generated_fleet(n: int) -> tuple[list[tuple[str, str]], list[WiringSpec]]:
    """N generated controllers, each with two ENV-S1, a PM-100, a PS-1 and a DS-2."""
    controllers, wiring = [], []
    for i in range(1, n + 1):
        mac = f"f2510000{i:04x}"
        controllers.append((f"Sim Controller {i}", mac))
        wiring += [
            WiringSpec(mac, 1, 1, f"Sim {i} Env A", "ENV-S1"),
            WiringSpec(mac, 1, 2, f"Sim {i} Env B", "ENV-S1"),
            WiringSpec(mac, 2, 1, f"Sim {i} Door", "DS-2"),
            WiringSpec(mac, 3, 1, f"Sim {i} Power", "PM-100"),
            WiringSpec(mac, 4, 1, f"Sim {i} Pressure", "PS-1"),
        ]
    return controllers, wiring


def device_time(timestamp_us: int) -> str:
    return (_EPOCH + timedelta(microseconds=timestamp_us)).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class Endpoint:
    """One wired device the simulator drives."""

    mac: str
    connector: int
    position: int
    device: WiredDevice
    model: SensorModel
    next_due: float = 0.0
    last_us: int = 0
    state: dict[str, bool] = field(default_factory=dict)

    @property
    def is_status(self) -> bool:
        return self.device.template_name in STATUS_TEMPLATES

    def topic(self) -> str:
        if self.is_status:
            mode, component = STATUS_TEMPLATES[self.device.template_name]
            if component != "door-sensors":
                component = f"{component}-{self.position}"
            return build_topic("stat", self.mac, mode, self.connector, component)
        return build_topic("tele", self.mac, "sensor-mode", self.connector, f"sensor-{self.position}")

    def stamp(self) -> int:
        # Distinct per sensor even at millisecond intervals: two readings never share a key.
        now_us = time.time_ns() // 1000
        self.last_us = max(now_us, self.last_us + 1)
        return self.last_us

    def message(self, rng: random.Random) -> tuple[str, bytes, list[dict[str, object]]] | None:
        """(topic, payload, readings) or None when a status device has nothing new to say."""
        ts = self.stamp()
        labels = {dp.label: dp for dp in self.device.datapoints}
        if self.is_status:
            changed = toggled(self.state, list(labels), rng)
            if changed is None:
                return None
            payload = {"timestamp": device_time(ts), **changed}
            readings = [(labels[k].datapoint_id, 1.0 if v else 0.0) for k, v in changed.items()]
        else:
            values = self.model.values(ts / 1e6)
            frame = encode_frame(values, self.device.datapoints)
            payload = {"timestamp": device_time(ts), "data": format_hex(frame)}
            readings = [(labels[k].datapoint_id, v) for k, v in values.items()]
        ts_text = rfc3339_from_us(ts)
        return (
            self.topic(),
            json.dumps(payload).encode(),
            [
                {"timestamp": ts_text, "device_id": self.device.device_id, "datapoint_id": dp, "value": v}
                for dp, v in readings
            ],
        )


class Ledger:
    """Thread-safe JSON-lines record of acknowledged messages."""

    def __init__(self, path: Path | None) -> None:
        self._fh: IO[str] | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, topic: str, payload: bytes, readings: list[dict[str, object]]) -> None:
        if self._fh is None:
            return
        line = json.dumps({"topic": topic, "payload": payload.decode(), "readings": readings})
        with self._lock:
            self._fh.write(line + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


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
        self.pending: dict[int, tuple[str, bytes, list[dict[str, object]]]] = {}
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

    def publish(self, topic: str, payload: bytes, readings: list[dict[str, object]]) -> None:
        # paho holds its own lock while calling on_publish: never hold ours across client.publish().
        info = self.client.publish(topic, payload, qos=1)
        entry = (topic, payload, readings)
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

    def _acknowledged(self, entry: tuple[str, bytes, list[dict[str, object]]], ok: bool) -> None:
        if ok:
            self.acked += 1
            self.ledger.write(*entry)

    def unacked(self) -> int:
        with self.lock:
            return len(self.pending)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def load_endpoints(registry_dsn: str, macs: Iterable[str], seed: int) -> list[Endpoint]:
    endpoints: list[Endpoint] = []
    with psycopg.connect(registry_dsn, connect_timeout=10) as conn:
        for mac in macs:
            topology: ControllerTopology | None = build_topology(mac, conn.execute(TOPOLOGY_SQL, (mac,)).fetchall())
            if topology is None:
                raise SystemExit(f"controller {mac} is not in the registry (run f2 db seed-sample)")
            for (connector, position), device in sorted(topology.wired.items()):
                if not device.datapoints:
                    continue
                rng = random.Random(f"{seed}-{device.device_id}")
                endpoints.append(Endpoint(mac, connector, position, device, SensorModel(device, rng)))
    return endpoints


def enrolled_identities(
    conn: ConnectionSettings, macs: list[str], devices_dir: Path, enroll_url: str | None
) -> dict[str, DeviceIdentity]:
    """Each controller's certificate, enrolling (with its registry claiming code) those that have none yet."""
    from certs.enroll_client import enroll

    if conn.ca_cert is None or not Path(conn.ca_cert).exists():
        raise SystemExit("F2_CA_CERT is not set or missing: devices cannot verify the broker (f2 stack env sets it)")
    devices_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    identities = {}
    codes: dict[str, str] = {}
    for mac in macs:
        crt, key = devices_dir / f"{mac}.crt", devices_dir / f"{mac}.key"
        if not (crt.exists() and key.exists()):
            if enroll_url is None:
                raise SystemExit(f"{mac} has no certificate in {devices_dir} and F2_ENROLL_URL is not set")
            if not codes:
                with psycopg.connect(conn.registry_dsn, connect_timeout=10) as db:
                    codes = dict(
                        db.execute(
                            'SELECT macaddress, claimingcode FROM "VtDevice".devices WHERE macaddress = ANY(%s)',
                            (macs,),
                        ).fetchall()
                    )
            crt, key = enroll(enroll_url, mac, codes.get(mac) or "", Path(conn.ca_cert), devices_dir)
        identities[mac] = DeviceIdentity(crt, key)
    return identities


def run_simulation(
    conn: ConnectionSettings,
    macs: list[str],
    *,
    identities: dict[str, DeviceIdentity] | None = None,
    interval_s: float,
    count: int | None,
    duration_s: float | None,
    ledger_path: Path | None,
    seed: int = 1,
    stop: threading.Event | None = None,
) -> int:
    """Publish until `count` messages or `duration_s` elapsed (or forever); returns the messages acknowledged."""
    stop = stop or threading.Event()
    endpoints = load_endpoints(conn.registry_dsn, macs, seed)
    ledger = Ledger(ledger_path)
    clients = {mac: ControllerClient(mac, conn, ledger, (identities or {}).get(mac)) for mac in macs}
    rng = random.Random(seed)
    for c in clients.values():
        if not c.connected.wait(30):
            raise SystemExit(f"controller {c.mac} could not connect to MQTT on {conn.mqtt_host}; see the broker log")
    start = time.monotonic()
    for i, ep in enumerate(endpoints):
        ep.next_due = start + interval_s * i / max(1, len(endpoints))  # spread the fleet over one interval
    published = 0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if duration_s is not None and now - start >= duration_s:
                break
            next_due = min(ep.next_due for ep in endpoints)
            if next_due > now:
                stop.wait(min(next_due - now, 0.5))
                continue
            for ep in endpoints:
                if ep.next_due > now:
                    continue
                ep.next_due += interval_s
                msg = ep.message(rng)
                if msg is None:
                    continue
                clients[ep.mac].publish(*msg)
                published += 1
                if count is not None and published >= count:
                    stop.set()
                    break
        # Wait for the broker's acknowledgements of everything published.
        deadline = time.monotonic() + 60
        while any(c.unacked() for c in clients.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return sum(c.acked for c in clients.values())
    finally:
        for c in clients.values():
            c.close()
        ledger.close()


def default_macs() -> list[str]:
    return [mac for _, mac in CONTROLLERS]
