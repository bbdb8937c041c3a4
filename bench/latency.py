"""Latency from device timestamp to database commit, without touching the sink.

A poller asks every `interval` seconds for the rows of a sample of series (device, datapoint) newer than the
newest it has seen of each; a row seen for the first time was committed between the previous query and this
one, so its latency is taken at the midpoint (resolution +/- interval/2). A series' readings travel one Kafka
partition at each hop and are committed in order, so nothing older than a series' newest row appears later.
Each query is one index probe per series and returns only new rows: the measurement must not load the
database (or the machine) it measures. The sink's own `f2_end_to_end_latency_seconds` histogram (observed
after each commit) is a cross-check with bucket resolution.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from streaming.kafka import topics
from streaming.kafka.records import header

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

_NEW_ROWS_SQL = """
SELECT w.k, d."timestamp"
FROM unnest(%s::int[], %s::int[], %s::timestamptz[]) WITH ORDINALITY AS w(device_id, datapoint_id, after, k)
CROSS JOIN LATERAL (
    SELECT "timestamp" FROM decoded_data
    WHERE device_id = w.device_id AND datapoint_id = w.datapoint_id
      AND "timestamp" > w.after AND "timestamp" <= %s
) d
"""


class RowPoller:
    def __init__(self, dsn: str, series: list[tuple[int, int]], interval: float = 0.05) -> None:
        self.dsn = dsn
        self.series = sorted(set(series))  # (device id, datapoint id)
        self.interval = interval
        self.window: tuple[float, float] = (math.inf, -math.inf)  # device timestamps (epoch s) to keep
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-poller", daemon=True)
        self.error: str | None = None

    def start(self, window_start: float, window_end: float) -> None:
        self.window = (window_start, window_end)
        self._thread.start()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(10)
        return self.latencies

    def _run(self) -> None:
        start, end = self.window
        devices = [device for device, _ in self.series]
        datapoints = [datapoint for _, datapoint in self.series]
        newest = [datetime.fromtimestamp(start, UTC) - _ONE_US] * len(self.series)
        upper = datetime.fromtimestamp(end, UTC)
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
                previous = time.time()
                while not self._stop.is_set():
                    before = time.time()
                    rows = conn.execute(_NEW_ROWS_SQL, (devices, datapoints, newest, upper)).fetchall()
                    seen_at = (previous + before) / 2
                    for k, ts in rows:
                        self.latencies.append(max(0.0, seen_at - ts.timestamp()))
                        if ts > newest[k - 1]:
                            newest[k - 1] = ts
                    previous = before
                    elapsed = time.time() - before
                    self._stop.wait(max(0.0, self.interval - elapsed))
        except psycopg.Error as exc:
            self.error = str(exc)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def histogram_delta(before: dict[float, float], after: dict[float, float]) -> dict[float, float]:
    return {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style quantile of cumulative buckets {upper bound: count} (q in 0..1)."""
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    total = items[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in items:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return items[-1][0]


def share_within(buckets: dict[float, float], bound: float) -> float | None:
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    total = items[-1][1]
    within = max((count for le, count in items if le <= bound), default=0.0)
    return within / total


def _device_us(text: str) -> int | None:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_US


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50) or 0.0, "p99": percentile(values, 99) or 0.0, "samples": len(values)}


def hop_latencies(raw: list[Message], decoded: list[Message]) -> dict[str, dict[str, float]]:
    """Device timestamp -> the bridge receiving the message (f2.received_at), and -> the processor producing
    its readings (the decoded records' CreateTime, before its transaction commits)."""
    received: list[float] = []
    for m in raw:
        try:
            device = _device_us(json.loads(m.value() or b"{}")["timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        at = header(m.headers(), topics.H_RECEIVED_AT)
        got = _device_us(at) if at else None
        if device is not None and got is not None:
            received.append(max(0.0, (got - device) / 1e6))
    produced: list[float] = []
    for m in decoded:
        kind, ms = m.timestamp()
        try:
            device = _device_us(json.loads(m.value() or b"{}")["timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        if device is not None and kind != TIMESTAMP_NOT_AVAILABLE:
            produced.append(max(0.0, (ms * 1000 - device) / 1e6))
    out = {}
    if received:
        out["bridge received"] = _summary(received)
    if produced:
        out["processor produced"] = _summary(produced)
    return out
