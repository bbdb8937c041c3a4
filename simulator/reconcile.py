"""Nothing lost, nothing duplicated: the rows of decoded_data against the readings of every message the broker
acknowledged (the simulator's `--ledger` files). `f2 simulate --reconcile`, the demo's history and the bench
use it; the real-time path's acceptance tests do the same on their own (tests/realtime.py).

Rows are compared over the ledgers' devices and exactly the span of their timestamps (to the microsecond), so
readings the same devices sent before or after, live or in another replay, are not counted against it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
Key = tuple[int, int, int]  # (timestamp in us, device_id, datapoint_id)


@dataclass
class Reconciliation:
    expected: int
    observed: int
    ok: bool
    detail: str = ""


def _us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - _EPOCH) // _ONE_US


def ledger_readings(paths: Iterable[Path]) -> tuple[dict[Key, float], int]:
    """(timestamp, device_id, datapoint_id) -> value of every reading, and the number of messages."""
    out: dict[Key, float] = {}
    messages = 0
    for path in paths:
        if not path.exists():
            continue
        with open(path) as fh:
            for line in fh:
                messages += 1
                for r in json.loads(line)["readings"]:
                    out[(_us(r["timestamp"]), int(r["device_id"]), int(r["datapoint_id"]))] = float(r["value"])
    return out, messages


def _bounds(expected: dict[Key, float]) -> tuple[list[int], datetime, datetime]:
    stamps = [k[0] for k in expected]
    first = _EPOCH + timedelta(microseconds=min(stamps))
    last = _EPOCH + timedelta(microseconds=max(stamps))
    return sorted({k[1] for k in expected}), first, last


def stored_count(dsn: str, expected: dict[Key, float]) -> int:
    devices, first, last = _bounds(expected)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute(
            'SELECT count(*) FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" BETWEEN %s AND %s',
            (devices, first, last),
        ).fetchone()
    return int(row[0]) if row else 0


def reconcile(expected: dict[Key, float], dsn: str) -> Reconciliation:
    if not expected:
        return Reconciliation(0, 0, False, "the ledger is empty: nothing was acknowledged")
    devices, first, last = _bounds(expected)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            # extract(epoch) is numeric (exact) since PostgreSQL 14: microseconds survive.
            'SELECT (extract(epoch FROM "timestamp") * 1000000)::bigint, device_id, datapoint_id, value '
            'FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" BETWEEN %s AND %s',
            (devices, first, last),
        ).fetchall()
    stored = {(int(ts), d, p): v for ts, d, p, v in rows}
    missing = set(expected) - set(stored)
    unexpected = set(stored) - set(expected)
    wrong = [
        k for k in set(expected) & set(stored) if not math.isclose(expected[k], stored[k], rel_tol=0, abs_tol=1e-9)
    ]
    ok = not (missing or unexpected or wrong) and len(stored) == len(expected)
    detail = (
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} with a wrong value"
        + (f"; e.g. missing {sorted(missing)[:3]}" if missing else "")
        + (f"; e.g. unexpected {sorted(unexpected)[:3]}" if unexpected else "")
    )
    return Reconciliation(len(expected), len(stored), ok, detail)


def wait_reconciled(expected: dict[Key, float], dsn: str, timeout: float) -> Reconciliation:
    """Wait until the rows are all there (cheap counts), then compare them reading by reading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stored_count(dsn, expected) < len(expected):
        time.sleep(1.0)
    report = reconcile(expected, dsn)
    while not report.ok and time.monotonic() < deadline:
        time.sleep(2.0)
        report = reconcile(expected, dsn)
    return report
