"""`f2 simulate`'s loop: a fleet of F2 controllers publishing real MQTT traffic (QoS 1) as docs/domain.md
describes, each controller on its own connection, each sensor once per interval: live, or replaying past
hours as fast as a rate allows (simulator/timebase.py).

With a ledger, every message the broker acknowledged is written with the readings it carries and the events it
must give, computed from the values and states the simulator sent and its own catalog (never by the platform's
decoder or topology code), so the database can be reconciled against what the devices really sent.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from simulator.endpoints import EventContext, load_endpoints
from simulator.fleet import Fleet
from simulator.ledger import Ledger
from simulator.mqtt_client import ControllerClient, DeviceIdentity
from simulator.timebase import LiveTime, TimeBase
from streaming.settings import ConnectionSettings


def run_simulation(
    conn: ConnectionSettings,
    fleet: Fleet,
    *,
    identities: dict[str, DeviceIdentity] | None = None,
    interval_s: float,
    count: int | None,
    duration_s: float | None,
    ledger_path: Path | None,
    seed: int = 1,
    stop: threading.Event | None = None,
    time_base: TimeBase | None = None,
    events: EventContext | None = None,
) -> int:
    """Publish until `count` messages or `duration_s` elapsed (or forever), or, with a ReplayTime, until its
    window is sent; returns the messages acknowledged."""
    stop = stop or threading.Event()
    endpoints = load_endpoints(
        conn.registry_dsn,
        fleet.wiring,
        seed,
        conn.registry_schema,
        unregistered=fleet.unregistered,
        events=events,
    )
    ledger = Ledger(ledger_path)
    clients = {mac: ControllerClient(mac, conn, ledger, (identities or {}).get(mac)) for mac in fleet.macs}
    rng = random.Random(seed)
    published = 0
    try:
        for c in clients.values():
            if not c.connected.wait(30):
                raise SystemExit(
                    f"controller {c.mac} could not connect to MQTT on {conn.mqtt_host}; see the broker log"
                )
        clock = time_base or LiveTime(duration_s)
        start = clock.begin()
        for i, ep in enumerate(endpoints):
            ep.next_due = start + interval_s * i / max(1, len(endpoints))  # spread the fleet over one interval
        while not stop.is_set():
            now = clock.now()
            if clock.finished(now):
                break
            next_due = min(ep.next_due for ep in endpoints)
            if next_due > now:
                clock.wait_until(next_due, stop)
                continue
            for ep in endpoints:
                if ep.next_due > now:
                    continue
                due = ep.next_due
                ep.next_due += interval_s
                msg = ep.message(rng, clock.device_us(due))
                if msg is None:
                    continue
                clients[ep.mac].publish(*msg)
                published += 1
                clock.pacer.pace(published, stop)
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
