"""The ledger (`f2 simulate --ledger FILE`): one JSON line per message the broker acknowledged, with its topic,
its payload, the readings it carries, computed from the values the simulator encoded, and the events it must
give. The tests and the bench compare it with decoded_data and device_events, so the readings' format is the
platform's row: timestamp (RFC 3339 UTC, microseconds), device_id, datapoint_id, value; an event is the
f2.events record without the previous state, which depends on the component's other events and is computed
when reconciling (simulator/reconcile.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

Reading = dict[str, object]
LedgerEvent = dict[str, object]


def rfc3339(timestamp_us: int) -> str:
    """'2026-01-01T00:00:00.000001Z' (integer arithmetic: a float of seconds would lose microseconds)."""
    seconds, micros = divmod(timestamp_us, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"


def reading(timestamp_us: int, device_id: int, datapoint_id: int, value: float) -> Reading:
    return {"timestamp": rfc3339(timestamp_us), "device_id": device_id, "datapoint_id": datapoint_id, "value": value}


def event(
    timestamp_us: int,
    mac: str,
    controller_id: int | None,
    connector: int,
    component: str,
    device_id: int | None,
    kind: str,
    mqtt_topic: str,
    *,
    state: str | None = None,
    credential: tuple[str, str, int] | None = None,
    indicator_hex: str | None = None,
) -> LedgerEvent:
    """One event as device_events must hold it (`credential`: fingerprint, key id, token length)."""
    fingerprint, key_id, length = credential if credential is not None else (None, None, None)
    return {
        "time": rfc3339(timestamp_us),
        "controller_mac": mac,
        "controller_id": controller_id,
        "connector": connector,
        "component": component,
        "device_id": device_id,
        "kind": kind,
        "state": state,
        "credential_fingerprint": fingerprint,
        "credential_key_id": key_id,
        "credential_length": length,
        "indicator_hex": indicator_hex,
        "mqtt_topic": mqtt_topic,
    }


class Ledger:
    """Thread-safe JSON-lines record of acknowledged messages; without a path it records nothing."""

    def __init__(self, path: Path | None) -> None:
        self._fh: IO[str] | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, topic: str, payload: bytes, readings: list[Reading], events: Sequence[LedgerEvent] = ()) -> None:
        if self._fh is None:
            return
        # acked_at: when the broker's acknowledgement arrived (the ledger is written then), Unix seconds.
        line = json.dumps(
            {
                "topic": topic,
                "payload": payload.decode(),
                "readings": readings,
                "events": list(events),
                "acked_at": round(time.time(), 3),
            }
        )
        with self._lock:
            self._fh.write(line + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
