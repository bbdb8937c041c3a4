"""Helpers for the real-time path's integration tests: publishing, waiting, reading dead letters, reconciling."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from confluent_kafka import Consumer, TopicPartition

from streaming.settings import ConnectionSettings

F2 = str(Path(sys.executable).parent / "f2")


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.25, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def publish(conn: ConnectionSettings, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and return once the broker acknowledged every message."""
    done = threading.Event()
    acked: set[int] = set()
    mids: list[int] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(conn.mqtt_username, conn.mqtt_password)

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: object, p: object) -> None:
        acked.add(mid)
        if len(acked) == len(messages):
            done.set()

    client.on_publish = on_publish
    client.connect(conn.mqtt_host, conn.mqtt_port)
    client.loop_start()
    try:
        for topic, payload in messages:
            mids.append(client.publish(topic, payload, qos=1).mid)
        assert done.wait(30), f"broker acknowledged {len(acked)} of {len(messages)} messages"
    finally:
        client.disconnect()
        client.loop_stop()


def session_present(conn: ConnectionSettings, client_id: str) -> bool:
    """Whether the broker still holds a session for `client_id`: paho resumes it (clean start off) and reads
    the CONNACK's Session Present flag; its own connection leaves with session expiry 0."""
    flags: list[bool] = []
    connected = threading.Event()

    def on_connect(c: mqtt.Client, u: object, f: mqtt.ConnectFlags, rc: object, p: object) -> None:
        flags.append(f.session_present)
        connected.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(conn.mqtt_username, conn.mqtt_password)
    client.on_connect = on_connect
    client.connect(conn.mqtt_host, conn.mqtt_port, clean_start=False)
    client.loop_start()
    try:
        assert connected.wait(10), f"the broker did not accept {client_id}"
    finally:
        client.disconnect()
        client.loop_stop()
    return flags[0]


class TopicReader:
    """Reads a Kafka topic from its end as of creation (read_committed), for asserting what the daemons wrote."""

    def __init__(self, conn: ConnectionSettings, topic: str) -> None:
        self.consumer = Consumer(
            {
                **conn.kafka_config(),
                "group.id": f"test-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
        parts = []
        for p in meta.partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            parts.append(TopicPartition(topic, p, high))
        self.consumer.assign(parts)
        self.records: list[tuple[bytes | None, bytes | None, dict[str, str]]] = []

    def poll(self, seconds: float = 1.0) -> list[tuple[bytes | None, bytes | None, dict[str, str]]]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for m in self.consumer.consume(1000, 0.2):
                if m.error() is None:
                    headers = {k: (v or b"").decode() for k, v in (m.headers() or [])}
                    self.records.append((m.key(), m.value(), headers))
        return self.records

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Reconciliation:
    expected: int
    stored: int
    missing: list[tuple[str, int, int]] = field(default_factory=list)
    unexpected: list[tuple[str, int, int]] = field(default_factory=list)
    wrong_value: list[tuple[tuple[str, int, int], float, float]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_value) and self.expected == self.stored


def ledger_readings(path: Path) -> dict[tuple[str, int, int], float]:
    """(timestamp, device_id, datapoint_id) -> value for every reading of every acknowledged message."""
    out: dict[tuple[str, int, int], float] = {}
    with open(path) as fh:
        for line in fh:
            for r in json.loads(line)["readings"]:
                out[(_norm_ts(r["timestamp"]), int(r["device_id"]), int(r["datapoint_id"]))] = float(r["value"])
    return out


def _norm_ts(text: str) -> str:
    # The ledger says 2026-01-01T00:00:00.000001Z; PostgreSQL gives back a datetime: compare as microseconds.
    from datetime import datetime

    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return f"{int(dt.timestamp()) * 1_000_000 + dt.microsecond}"


def stored_readings(dsn: str, device_ids: set[int], first: str, last: str) -> dict[tuple[str, int, int], float]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            # extract(epoch) is numeric (exact) since PostgreSQL 14: microseconds survive.
            'SELECT (extract(epoch FROM "timestamp") * 1000000)::bigint::text, device_id, datapoint_id, value '
            'FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" BETWEEN %s::timestamptz AND %s::timestamptz',
            (sorted(device_ids), first, last),
        ).fetchall()
    return {(ts, d, p): v for ts, d, p, v in rows}


def reconcile(ledger: Path, dsn: str) -> Reconciliation:
    expected = ledger_readings(ledger)
    assert expected, "the ledger is empty: nothing was acknowledged"
    from datetime import UTC, datetime

    stamps = sorted(int(k[0]) for k in expected)
    first = datetime.fromtimestamp(stamps[0] // 1_000_000, UTC).isoformat()
    last = datetime.fromtimestamp(stamps[-1] // 1_000_000 + 1, UTC).isoformat()
    stored = stored_readings(dsn, {k[1] for k in expected}, first, last)
    report = Reconciliation(expected=len(expected), stored=len(stored))
    report.missing = sorted(set(expected) - set(stored))[:20]
    report.unexpected = sorted(set(stored) - set(expected))[:20]
    report.wrong_value = [
        (k, expected[k], stored[k])
        for k in set(expected) & set(stored)
        if not math.isclose(expected[k], stored[k], rel_tol=0, abs_tol=1e-9)
    ][:20]
    return report


def wait_reconciled(ledger: Path, dsn: str, timeout: float = 120) -> Reconciliation:
    report: Reconciliation | None = None

    def done() -> bool:
        nonlocal report
        report = reconcile(ledger, dsn)
        return report.exact

    with contextlib.suppress(AssertionError):  # the caller asserts on the report, with its details
        wait_for(done, timeout, interval=1.0, what="the database to match the ledger")
    assert report is not None
    return report


def simulate(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.Popen[bytes]:
    return subprocess.Popen([F2, "simulate", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
