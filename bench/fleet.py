"""The bench's load: a generated fleet in the registry (frames made by the simulator's own value models and
encoder), MQTT payloads with live device timestamps, and a synthetic sensor portfolio for decoded rows.

The fleet has the shape of `f2 simulate --controllers N` (two ENV-S1, a DS-2, a PM-100 and a PS-1 per
controller) under its own MAC prefix, so a bench never drives or reconciles another tool's devices. It is
written with a few set-based statements: `seed_fleet` issues several statements per device, which takes
minutes for thousands of controllers.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import psycopg

from f2_platform.registry.sample import WiringSpec
from simulator.frames import encode_frame
from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.hex import format_hex

MAC_PREFIX = "be5e"

_PRESENT_SQL = """
SELECT ctl.macaddress, count(*) FROM "VtDevice".pins p
JOIN "VtDevice".connectors c ON c.connectorid = p.connectorid
JOIN "VtDevice".devices ctl ON ctl.deviceid = c.controllerid
WHERE ctl.macaddress = ANY(%s) AND p.deviceid IS NOT NULL
GROUP BY ctl.macaddress
"""
_CONTROLLERS_SQL = """
INSERT INTO "VtDevice".devices (devicename, devicetemplateid, macaddress, claimingcode, serialnumber, uuid)
SELECT n, %s, m, 'claim-' || m, 'SN-' || m, gen_random_uuid() FROM unnest(%s::text[], %s::text[]) AS t(n, m)
ON CONFLICT (macaddress) DO UPDATE SET devicename = EXCLUDED.devicename
RETURNING macaddress, deviceid
"""
_CONNECTORS_SQL = """
INSERT INTO "VtDevice".connectors (controllerid, connectornumber)
SELECT * FROM unnest(%s::int[], %s::int[])
ON CONFLICT (controllerid, connectornumber) DO UPDATE SET connectornumber = EXCLUDED.connectornumber
RETURNING controllerid, connectornumber, connectorid
"""
_DEVICES_SQL = """
INSERT INTO "VtDevice".devices (devicename, devicetemplateid, serialnumber, uuid)
SELECT n, t, s, gen_random_uuid() FROM unnest(%s::text[], %s::int[], %s::text[]) AS x(n, t, s)
RETURNING serialnumber, deviceid
"""
_PINS_SQL = """
INSERT INTO "VtDevice".pins (connectorid, position, deviceid)
SELECT * FROM unnest(%s::int[], %s::int[], %s::int[])
ON CONFLICT (connectorid, position) DO UPDATE SET deviceid = EXCLUDED.deviceid
"""


def bench_macs(n: int) -> list[str]:
    return [f"{MAC_PREFIX}{i:08x}" for i in range(1, n + 1)]


def bench_fleet(n: int) -> tuple[list[tuple[str, str]], list[WiringSpec]]:
    controllers, wiring = [], []
    for i, mac in enumerate(bench_macs(n), start=1):
        controllers.append((f"Bench Controller {i}", mac))
        wiring += [
            WiringSpec(mac, 1, 1, f"Bench {i} Env A", "ENV-S1"),
            WiringSpec(mac, 1, 2, f"Bench {i} Env B", "ENV-S1"),
            WiringSpec(mac, 2, 1, f"Bench {i} Door", "DS-2"),
            WiringSpec(mac, 3, 1, f"Bench {i} Power", "PM-100"),
            WiringSpec(mac, 4, 1, f"Bench {i} Pressure", "PS-1"),
        ]
    return controllers, wiring


def seed_bench_fleet(dsn: str, n: int) -> None:
    """Make the registry hold the bench fleet of n controllers (idempotent)."""
    from f2_platform.registry.sample import TEMPLATES
    from f2_platform.registry.seed import seed_fleet, upsert_device_types, upsert_templates

    all_controllers, all_wiring = bench_fleet(n)
    per_controller = len(all_wiring) // max(1, len(all_controllers))
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.transaction():
        present = {
            mac: int(count)
            for mac, count in conn.execute(_PRESENT_SQL, ([mac for _, mac in all_controllers],)).fetchall()
        }
        # Controllers wired completely by an earlier run stay; partly wired ones (an interrupted run) take the
        # exact, slower path; the rest is written in bulk.
        partial = {mac for mac, count in present.items() if 0 < count < per_controller}
        if partial:
            seed_fleet(
                conn, [c for c in all_controllers if c[1] in partial], [w for w in all_wiring if w.mac in partial]
            )
        fresh = {mac for _, mac in all_controllers if mac not in present}
        if not fresh:
            return
        controllers = [c for c in all_controllers if c[1] in fresh]
        wiring = [w for w in all_wiring if w.mac in fresh]
        macs = [mac for _, mac in controllers]
        types = upsert_device_types(conn)
        templates = upsert_templates(conn, TEMPLATES, types)
        rows = conn.execute(
            _CONTROLLERS_SQL, (templates["F2 Controller"], [name for name, _ in controllers], macs)
        ).fetchall()
        controller_ids = {mac: int(device_id) for mac, device_id in rows}
        pairs = sorted({(controller_ids[w.mac], w.connector) for w in wiring})
        rows = conn.execute(_CONNECTORS_SQL, ([p[0] for p in pairs], [p[1] for p in pairs])).fetchall()
        connector_ids = {(int(c), int(n)): int(cid) for c, n, cid in rows}
        serials = [f"SN-{w.mac}-{w.connector}-{w.position}" for w in wiring]
        rows = conn.execute(
            _DEVICES_SQL, ([w.device for w in wiring], [templates[w.template] for w in wiring], serials)
        ).fetchall()
        device_ids = {serial: int(device_id) for serial, device_id in rows}
        conn.execute(
            _PINS_SQL,
            (
                [connector_ids[(controller_ids[w.mac], w.connector)] for w in wiring],
                [w.position for w in wiring],
                [device_ids[s] for s in serials],
            ),
        )


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


def load_endpoints(registry_dsn: str, macs: list[str], variants: int = 8, seed: int = 1) -> list[LoadEndpoint]:
    """The fleet's frame sensors, read back from the registry as the simulator reads them."""
    import simulator.run as simulator

    out = []
    t0 = time.time()
    for ep in simulator.load_endpoints(registry_dsn, macs, seed):
        if ep.is_status:
            continue
        labels = {dp.label: dp for dp in ep.device.datapoints}
        frames = []
        for k in range(variants):
            values = ep.model.values(t0 + 30.0 * k)
            frame = encode_frame(values, ep.device.datapoints)
            readings = tuple((labels[label].datapoint_id, value) for label, value in values.items())
            frames.append((format_hex(frame).encode(), readings))
        out.append(LoadEndpoint(ep.mac, ep.topic(), ep.device.device_id, tuple(frames)))
    return out


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


def ledger_readings(endpoint: LoadEndpoint, variant: int, ts_us: int) -> list[dict[str, object]]:
    """The readings of one message in the simulator's ledger format."""
    ts = rfc3339_from_us(ts_us)
    return [
        {"timestamp": ts, "device_id": endpoint.device_id, "datapoint_id": dp, "value": v}
        for dp, v in endpoint.variants[variant][1]
    ]


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
