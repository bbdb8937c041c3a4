"""The bench's load: a generated fleet in the registry (the shape of `f2 simulate --controllers N` under its own
MAC prefix, so a bench never drives or reconciles another tool's devices), frames made by the simulator's own
catalog, value models and encoder, the status and reader messages of its doors, exit buttons, motion sensors,
strikes, sirens and readers made by the simulator's behaviour (events, `event_share` of the messages), MQTT
payloads with live device timestamps, and a synthetic sensor portfolio for decoded rows.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import cast

import psycopg

from simulator.behaviour import EventMix, card_pool
from simulator.endpoints import EventContext
from simulator.endpoints import load_endpoints as simulator_endpoints
from simulator.fingerprints import CredentialKey
from simulator.fleet import Fleet, generated_fleet, generated_macs
from simulator.frames import encode_frame, hex_text
from simulator.ledger import LedgerEvent, Reading, reading, rfc3339

MAC_PREFIX = "be5e"


def bench_fleet(n: int) -> Fleet:
    return generated_fleet(n, MAC_PREFIX, "Bench")


def bench_macs(n: int) -> list[str]:
    return generated_macs(n, MAC_PREFIX)


def seed_bench_fleet(dsn: str, n: int) -> Fleet:
    """Make the registry hold the bench fleet of n controllers (idempotent, a few set-based statements)."""
    from f2_platform.registry.seed import seed_fleet

    fleet = bench_fleet(n)
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.transaction():
        seed_fleet(conn, fleet.controllers, fleet.wiring)
    return fleet


# ------------------------------------------------------------------------------------------ messages


@dataclass(frozen=True)
class LoadEndpoint:
    """One frame sensor of the fleet, with a few pre-encoded frames (values from the simulator's model)."""

    mac: str
    topic: str
    device_id: int
    # (frame as the hex text controllers send, readings as (datapoint id, value) in the simulator's order)
    variants: tuple[tuple[bytes, tuple[tuple[int, float], ...]], ...]

    @property
    def readings_per_frame(self) -> int:
        return len(self.variants[0][1])


def load_endpoints(registry_dsn: str, fleet: Fleet, variants: int = 8, seed: int = 1) -> list[LoadEndpoint]:
    """The fleet's frame sensors as the simulator drives them, with `variants` frames each."""
    out = []
    t0 = time.time()
    for ep in simulator_endpoints(registry_dsn, fleet.wiring, seed):
        if ep.is_status or ep.device_id is None:
            continue
        frames = []
        for k in range(variants):
            values = ep.model.values(t0 + 30.0 * k)
            frame = encode_frame(values, ep.template.datapoints)
            readings = tuple((ep.datapoint_ids[label], value) for label, value in values.items())
            frames.append((hex_text(frame).encode(), readings))
        out.append(LoadEndpoint(ep.mac, ep.topic, ep.device_id, tuple(frames)))
    return out


@dataclass(frozen=True)
class EventEndpoint:
    """One status or reader component of the fleet, with a few of its messages pre-encoded in the order the
    simulator's behaviour sent them (a door opening, then closing...), each sent in turn."""

    mac: str
    topic: str
    # (the payload after its timestamp field, readings as (device id, datapoint id, value), the events without
    # their time)
    variants: tuple[tuple[bytes, tuple[tuple[int, int, float], ...], tuple[LedgerEvent, ...]], ...]

    def records(self) -> float:
        """What the sink stores per message on average: readings and events."""
        return sum(len(r) + len(e) for _, r, e in self.variants) / len(self.variants)


# Pre-encoded from the simulator's behaviour at a working hour, when every component reports at each tick:
# how often each reports in the bench is the event share's.
_VARIANT_AT_US = 1_767_261_600_000_000  # 2026-01-01 10:00:00 UTC
_TIMESTAMP_PREFIX = b'{"timestamp": "'


def event_endpoints(
    registry_dsn: str, fleet: Fleet, key: CredentialKey, variants: int = 8, seed: int = 1
) -> list[EventEndpoint]:
    """The fleet's status and reader components (the unregistered exit buttons too), `variants` messages each."""
    import random

    mix = EventMix(activity=1.0)
    context = EventContext(mix, card_pool(seed, mix.cards), key)
    rng = random.Random(seed)
    out = []
    for ep in simulator_endpoints(registry_dsn, fleet.wiring, seed, unregistered=fleet.unregistered, events=context):
        if not ep.is_status:
            continue
        made: list[tuple[bytes, tuple[tuple[int, int, float], ...], tuple[LedgerEvent, ...]]] = []
        tick = 0
        while len(made) < variants:
            # Motion sensors are quieter in working hours: ticks until each has its variants.
            tick += 1
            message = ep.message(rng, _VARIANT_AT_US + tick * 1_000_000)
            if message is None:
                continue
            _, body, readings, events = message
            # The payload is json.dumps({"timestamp": ..., **fields}): keep what follows the timestamp.
            stamp_end = len(_TIMESTAMP_PREFIX) + len("2026-01-01 10:00:00.000000")
            rest = body[stamp_end + 1 : -1]
            assert event_payload(body[len(_TIMESTAMP_PREFIX) : stamp_end], rest) == body, body
            made.append(
                (
                    rest,
                    tuple(_triple(r) for r in readings),
                    tuple({k: v for k, v in e.items() if k != "time"} for e in events),
                )
            )
        out.append(EventEndpoint(ep.mac, ep.topic, tuple(made)))
    return out


def _triple(r: Reading) -> tuple[int, int, float]:
    return cast(int, r["device_id"]), cast(int, r["datapoint_id"]), cast(float, r["value"])


def event_payload(device_time: bytes, rest: bytes) -> bytes:
    """Byte for byte what the simulator publishes for a status or reader message."""
    return b'{"timestamp": "%s"%s}' % (device_time, rest)


def event_ledger_entry(endpoint: EventEndpoint, variant: int, ts_us: int) -> tuple[list[Reading], list[LedgerEvent]]:
    """The readings and events of one status or reader message, in the simulator's ledger format."""
    _, readings, events = endpoint.variants[variant]
    at = rfc3339(ts_us)
    return [reading(ts_us, d, p, v) for d, p, v in readings], [{"time": at, **e} for e in events]


class Stamper:
    """Device-clock text ('2024-05-25 15:13:10.543400', naive UTC) of microsecond timestamps, cheaply."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = b""

    def device_time(self, ts_us: int) -> bytes:
        sec, us = divmod(ts_us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)).encode()
        return b"%s.%06d" % (self._prefix, us)


def payload(device_time: bytes, hex_frame: bytes) -> bytes:
    """Byte for byte what the simulator publishes (json.dumps of {"timestamp", "data"})."""
    return b'{"timestamp": "%s", "data": "%s"}' % (device_time, hex_frame)


def ledger_readings(endpoint: LoadEndpoint, variant: int, ts_us: int) -> list[Reading]:
    """The readings of one message in the simulator's ledger format."""
    return [reading(ts_us, endpoint.device_id, dp, v) for dp, v in endpoint.variants[variant][1]]


# ------------------------------------------------------------------------------- synthetic portfolio

# COPY's binary format: signature, flags, header extension length; per row the field count and each field's
# length and value (timestamptz as microseconds since 2000-01-01 UTC); -1 ends the data.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_ROW = struct.Struct("!hiqiiiiid")
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000


@dataclass(frozen=True)
class Portfolio:
    """Decoded rows of a large sensor portfolio: `sensors` devices with three datapoints each, reporting in
    turn, timestamps rising by `step_us` per frame (10,000 controllers x 24 sensors every 30 s is 125 us).

    Every key of a sink batch is distinct, as in production, so the latest_values merge does full work.
    Device ids sit far above the registry's, so the rows never mix with real devices' readings.
    """

    first_device_id: int
    base_us: int
    sensors: int = 240_000
    step_us: int = 125
    datapoints: tuple[int, int, int] = (9001, 9002, 9003)

    @staticmethod
    def starting_soon(first_device_id: int, lead_s: float = 600.0) -> Portfolio:
        # Slightly in the future: readings older than the current hour take the late-data trigger's slow path,
        # which the steady stream of current readings never does.
        return Portfolio(first_device_id, int((time.time() + lead_s) * 1_000_000))

    def frame(self, k: int) -> tuple[int, int]:
        """(device id, timestamp in us) of frame k."""
        return self.first_device_id + k % self.sensors, self.base_us + k * self.step_us

    def copy_binary(self, first_frame: int, frames: int) -> tuple[bytes, int]:
        """COPY binary data (timestamp, device_id, datapoint_id, value), as the sink writes it, and the number
        of rows."""
        parts = [_COPY_HEADER]
        pack = _COPY_ROW.pack
        d1, d2, d3 = self.datapoints
        for k in range(first_frame, first_frame + frames):
            device, ts_us = self.frame(k)
            at = ts_us - _PG_EPOCH_US
            v = (k % 2000) / 10.0
            parts.append(
                pack(4, 8, at, 4, device, 4, d1, 8, v)
                + pack(4, 8, at, 4, device, 4, d2, 8, v + 1.5)
                + pack(4, 8, at, 4, device, 4, d3, 8, v * 2)
            )
        parts.append(_COPY_TRAILER)
        return b"".join(parts), 3 * frames

    def decoded_records(self, first_frame: int, frames: int) -> list[tuple[bytes, bytes]]:
        """(key, value) records of the decoded topic, as the processor writes them."""
        out = []
        stamp = _RfcStamper()
        for k in range(first_frame, first_frame + frames):
            device, ts_us = self.frame(k)
            ts = stamp.text(ts_us)
            v = (k % 2000) / 10.0
            for dp, value in zip(self.datapoints, (v, v + 1.5, v * 2), strict=True):
                out.append(
                    (
                        b"%d:%d" % (device, dp),
                        b'{"timestamp": "%s", "device_id": %d, "datapoint_id": %d, "value": %r}'
                        % (ts.encode(), device, dp, value),
                    )
                )
        return out

    def device_range(self) -> tuple[int, int]:
        return self.first_device_id, self.first_device_id + self.sensors - 1


class _RfcStamper:
    """RFC 3339 UTC text ('2024-05-25T15:13:10.543400Z') of microsecond timestamps, cheaply."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def text(self, ts_us: int) -> str:
        sec, us = divmod(ts_us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{us:06d}Z"
