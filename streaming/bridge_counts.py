"""The bridge's durable counts (topic f2.bridge.counts, docs/contracts.md): pure encoding and reading.

One record per produce batch of a bridge: how many MQTT messages it received in that batch, per controller
(the MAC of the topic; "" for a topic without one). The batch shares one receive time (the f2.received_at of
its raw records), so the record's hour is the hour its raw records are counted in by the reconciliation
(f2_platform/reconciliation): both sides bucket by the bridge's receive time, never by the device's clock.
"""

from __future__ import annotations

import json
from typing import NamedTuple

# The key of messages whose topic names no controller (they are produced to f2.raw without a key).
NO_CONTROLLER = ""


class BatchCounts(NamedTuple):
    bridge: str
    received_at: str  # RFC 3339 UTC, as in the batch's f2.received_at headers
    counts: dict[str, int]  # controller MAC (or NO_CONTROLLER) -> messages received

    @property
    def hour(self) -> str:
        """The receive hour, `YYYY-MM-DDTHH` (UTC), the reconciliation's bucket."""
        return hour_of(self.received_at)


def hour_of(received_at: str) -> str:
    return received_at[:13]


def encode_counts(bridge: str, received_at: bytes, counts: dict[str | None, int]) -> bytes:
    return json.dumps(
        {
            "bridge": bridge,
            "received_at": received_at.decode("ascii"),
            "counts": {mac or NO_CONTROLLER: n for mac, n in counts.items()},
        },
        separators=(",", ":"),
    ).encode()


def decode_counts(value: bytes) -> BatchCounts:
    """ValueError naming what is wrong when the record is not a bridge counts record."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"a bridge counts record is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("a bridge counts record must be a JSON object")
    bridge, received_at, counts = data.get("bridge"), data.get("received_at"), data.get("counts")
    if not isinstance(bridge, str) or not isinstance(received_at, str) or len(received_at) < 13:
        raise ValueError("a bridge counts record needs the strings `bridge` and `received_at` (RFC 3339)")
    if not isinstance(counts, dict) or not all(
        isinstance(mac, str) and isinstance(n, int) and n >= 0 for mac, n in counts.items()
    ):
        raise ValueError("a bridge counts record's `counts` must map controller MACs to counts")
    return BatchCounts(bridge, received_at, counts)
