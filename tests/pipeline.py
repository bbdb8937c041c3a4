"""The real-time path's daemons as real processes (`f2 bridge|processor|sink`, `f2 certs serve`) for integration
tests; they die with the test session."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from f2_platform.stack.daemons import DaemonProcess, pipeline_daemon, start_all, stop_all


class Pipeline:
    def __init__(self, env: dict[str, str], log_dir: Path, processors: int = 1, sinks: int = 1) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        # The enrollment service lets the simulator's devices obtain their certificates (mTLS is the default).
        kinds = [("enroll", 0), ("bridge", 0)]
        kinds += [("processor", i) for i in range(processors)] + [("sink", i) for i in range(sinks)]
        self.daemons: list[DaemonProcess] = [
            pipeline_daemon(kind, i, env, log_dir / f"{kind}-{i}.log", instance="test") for kind, i in kinds
        ]

    def get(self, name: str) -> DaemonProcess:
        return next(d for d in self.daemons if d.name == name)

    def start(self) -> None:
        start_all(self.daemons, timeout=60)

    def restart(self, name: str) -> None:
        d = self.get(name)
        d.start()
        d.wait_healthy()

    def alive(self) -> dict[str, bool]:
        return {d.name: d.alive() for d in self.daemons}

    def stop(self) -> dict[str, int | None]:
        codes = stop_all(self.daemons)
        # A stopped bridge's persistent session stays in the broker's shared subscription and would be dealt a
        # share of every later test's messages (held for a client that never returns): end it.
        for d in self.daemons:
            if d.kind == "bridge":
                end_mqtt_session(d.env, d.env["F2_BRIDGE_CLIENT_ID"])
        return codes


def end_mqtt_session(env: dict[str, str], client_id: str) -> None:
    """Discard the broker's session of `client_id`: connect with clean start and session expiry 0, disconnect."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(env["F2_MQTT_USERNAME"], env["F2_MQTT_PASSWORD"])
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect(env["F2_MQTT_HOST"], int(env["F2_MQTT_PORT"]), clean_start=True, properties=properties)
    client.loop_start()
    try:
        assert connected.wait(10), f"the broker did not accept {client_id} to end its session"
    finally:
        client.disconnect()
        client.loop_stop()


def env_without_proxy(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy")} | {
        "PYTHONUNBUFFERED": "1",
        "F2_LOG_LEVEL": os.environ.get("F2_LOG_LEVEL", "INFO"),
    }
