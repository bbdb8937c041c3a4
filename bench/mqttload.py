"""A load generator that is not the bottleneck: publisher processes speaking MQTT 3.1.1 at QoS 1 on raw
sockets.

paho spends tens of microseconds per QoS 1 publish in Python; these publishers pre-encode every frame with the
simulator's value models and encoder, and per message only stamp a live device timestamp (distinct per sensor,
as the simulator does), append the PUBLISH packet to a buffer and count PUBACKs in bulk. Each process keeps
at most `window` publishes unacknowledged and sends at a fixed rate, as fast as it can, or within a credit
the bench raises as the pipeline commits (a closed loop that keeps the broker's queue bounded).

With a ledger path, every published message is written after the run in the simulator's `--ledger` format,
once the broker has acknowledged all of them (the run fails otherwise).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import socket
import threading
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from bench.fleet import (
    EventEndpoint,
    LoadEndpoint,
    Stamper,
    event_ledger_entry,
    event_payload,
    ledger_readings,
    payload,
)
from streaming.mqtt.wire import connect_packet as _connect_packet
from streaming.mqtt.wire import encode_remaining_length as _remaining_length
from streaming.mqtt.wire import encode_string as _string

log = logging.getLogger("f2.bench.mqtt")


@dataclass
class PublisherSpec:
    index: int
    host: str
    port: int
    username: str | None
    password: str | None
    endpoints: list[LoadEndpoint]
    ledger_path: str | None = None
    window: int = 5000
    chunk: int = 64
    rate_per_s: float = 0.0  # 0: as fast as the window and the credit allow
    # Status and reader components; `event_share` of the messages are theirs, each component in turn.
    event_endpoints: list[EventEndpoint] = field(default_factory=list)
    event_share: float = 0.0


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    # MQTT 3.1.1, clean session (the generator keeps no state across connections), no keepalive.
    return _connect_packet(client_id, username, password, protocol_level=4)


class _Acks:
    """Counts PUBACKs on the socket (a reader thread); anything else from the broker is an error."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.count = 0
        self.error: str | None = None
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pubacks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray()
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    self.error = self.error or "the broker closed the connection"
                    return
                buf += data
                n = len(buf) // 4
                if n and buf[0 : 4 * n : 4] == b"\x40" * n:  # fast path: only 4-byte PUBACKs
                    self.count += n
                    del buf[: 4 * n]
                    continue
                while len(buf) >= 2:
                    size = 2 + buf[1]
                    if len(buf) < size:
                        break
                    if buf[0] == 0x40:
                        self.count += 1
                    else:
                        self.error = f"unexpected MQTT packet type 0x{buf[0]:02x} from the broker"
                        return
                    del buf[:size]
        except OSError as exc:
            if not self.closed.is_set():
                self.error = f"socket error: {exc}"
        finally:
            self.closed.set()


def _connect(spec: PublisherSpec) -> socket.socket:
    sock = socket.create_connection((spec.host, spec.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sock.sendall(connect_packet(f"f2-bench-pub-{spec.index}-{time.time_ns() % 10**9}", spec.username, spec.password))
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        if not chunk:
            raise ConnectionError("the broker closed the connection before CONNACK")
        connack += chunk
    if connack[0] != 0x20 or connack[3] != 0:
        raise ConnectionError(f"MQTT connection refused (CONNACK {connack.hex()})")
    sock.settimeout(None)
    return sock


def publisher_main(
    spec: PublisherSpec,
    sent: Synchronized,
    acked: Synchronized,
    credit: Synchronized,
    failed: Synchronized,
    go: Any,
    stop: Any,
) -> None:
    """Process body: connect, wait for `go`, publish until `stop`, wait for every PUBACK, write the ledger."""
    try:
        sock = _connect(spec)
    except (OSError, ConnectionError) as exc:
        log.error("publisher %d: %s", spec.index, exc)
        failed.value = 1
        return
    acks = _Acks(sock)
    eps = spec.endpoints
    n_eps = len(eps)
    n_var = len(eps[0].variants) if eps else 0
    sections = [_string(ep.topic) for ep in eps]
    last_us = [0] * n_eps
    evs = spec.event_endpoints
    n_evs = len(evs)
    ev_sections = [_string(ep.topic) for ep in evs]
    ev_last_us = [0] * n_evs
    share = spec.event_share if n_evs else 0.0
    if not eps:
        share = 1.0 if n_evs else 0.0
    frames = events = 0  # messages of each sort sent so far
    stamper = Stamper()
    # What was sent, for the ledger: endpoint index, variant, device timestamp.
    rec_ep, rec_var, rec_ts = array("I"), array("B"), array("q")
    record = spec.ledger_path is not None
    n = 0
    pid = 0
    chunk = spec.chunk
    window = spec.window
    rate = spec.rate_per_s
    max_burst = max(chunk, int(rate * 0.1))
    go.wait()
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            allowed = chunk
            if rate > 0:
                now = time.monotonic()
                due = int(rate * (now - t0)) + 1 - n
                if due > max_burst:
                    # Behind (the machine was busy): like a device, never catch up in a burst.
                    t0 = now - (n + max_burst) / rate
                    due = max_burst
                allowed = min(allowed, due)
            limit = credit.value
            if limit >= 0:
                allowed = min(allowed, limit - n)
            allowed = min(allowed, window - (n - acks.count))
            if allowed <= 0:
                if acks.error:
                    raise ConnectionError(acks.error)
                acked.value = acks.count
                time.sleep(0.0005)
                continue
            now_us = time.time_ns() // 1000
            out = bytearray()
            for _ in range(allowed):
                pid = pid % 65535 + 1
                # Exactly `share` of the messages are events, spread evenly (message n is one when the count
                # of events due by n + 1 grows).
                if share and int((n + 1) * share) > int(n * share):
                    j = events % n_evs
                    v = (events // n_evs) % len(evs[j].variants)
                    ts = ev_last_us[j] + 1
                    if ts < now_us:
                        ts = now_us
                    ev_last_us[j] = ts
                    rest = evs[j].variants[v][0]
                    body = ev_sections[j] + pid.to_bytes(2, "big") + event_payload(stamper.device_time(ts), rest)
                    i = n_eps + j
                    events += 1
                else:
                    i = frames % n_eps
                    v = (frames // n_eps) % n_var
                    ts = last_us[i] + 1
                    if ts < now_us:
                        ts = now_us
                    last_us[i] = ts
                    frame = eps[i].variants[v][0]
                    body = sections[i] + pid.to_bytes(2, "big") + payload(stamper.device_time(ts), frame)
                    frames += 1
                out += b"\x32" + _remaining_length(len(body)) + body
                if record:
                    rec_ep.append(i)
                    rec_var.append(v)
                    rec_ts.append(ts)
                n += 1
            sock.sendall(out)
            sent.value = n
            acked.value = acks.count
        deadline = time.monotonic() + 60
        while acks.count < n and time.monotonic() < deadline and not acks.error:
            time.sleep(0.01)
        acked.value = acks.count
        if acks.count < n:
            raise ConnectionError(f"{n - acks.count} of {n} publishes unacknowledged ({acks.error or 'timeout'})")
        acks.closed.set()
        try:
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            sock.close()
        if record and spec.ledger_path:
            _write_ledger(Path(spec.ledger_path), eps, evs, rec_ep, rec_var, rec_ts)
    except (OSError, ConnectionError) as exc:
        log.error("publisher %d failed: %s", spec.index, exc)
        failed.value = 1


def _write_ledger(
    path: Path, eps: list[LoadEndpoint], evs: list[EventEndpoint], rec_ep: array, rec_var: array, rec_ts: array
) -> None:
    from simulator.ledger import Ledger

    ledger = Ledger(path)
    stamper = Stamper()
    n_eps = len(eps)
    try:
        for i, v, ts in zip(rec_ep, rec_var, rec_ts, strict=True):
            if i >= n_eps:
                ev = evs[i - n_eps]
                readings, events = event_ledger_entry(ev, v, ts)
                ledger.write(ev.topic, event_payload(stamper.device_time(ts), ev.variants[v][0]), readings, events)
                continue
            ep = eps[i]
            ledger.write(ep.topic, payload(stamper.device_time(ts), ep.variants[v][0]), ledger_readings(ep, v, ts))
    finally:
        ledger.close()


class Publishers:
    """A set of publisher processes sharing the fleet; counters readable from the bench process."""

    def __init__(self, specs: list[PublisherSpec]) -> None:
        ctx = mp.get_context("spawn")
        self.specs = specs
        self.sent = [ctx.Value("q", 0, lock=False) for _ in specs]
        self.acked = [ctx.Value("q", 0, lock=False) for _ in specs]
        self.credits = [ctx.Value("q", -1, lock=False) for _ in specs]
        self.failed = [ctx.Value("i", 0, lock=False) for _ in specs]
        self.go = ctx.Event()
        self.stop_event = ctx.Event()
        self.procs = [
            ctx.Process(
                target=publisher_main,
                name=f"f2-bench-publisher-{s.index}",
                args=(
                    s,
                    self.sent[k],
                    self.acked[k],
                    self.credits[k],
                    self.failed[k],
                    self.go,
                    self.stop_event,
                ),
                daemon=True,
            )
            for k, s in enumerate(specs)
        ]

    @staticmethod
    def split(
        endpoints: list[LoadEndpoint],
        processes: int,
        event_endpoints: list[EventEndpoint] | None = None,
        event_share: float = 0.0,
        **kwargs: Any,
    ) -> list[PublisherSpec]:
        """Endpoints dealt round-robin to `processes` publishers (each sensor and component belongs to one
        publisher), each sending `event_share` of its messages as the components' events."""
        evs = event_endpoints or []
        groups = [(endpoints[k::processes], evs[k::processes]) for k in range(processes)]
        return [
            PublisherSpec(index=k, endpoints=g, event_endpoints=e, event_share=event_share if e else 0.0, **kwargs)
            for k, (g, e) in enumerate(groups)
            if g or e
        ]

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def begin(self) -> None:
        self.go.set()

    def set_credit(self, total_messages: int | None) -> None:
        """Allow at most `total_messages` publishes in all (None: no credit limit)."""
        if total_messages is None:
            for c in self.credits:
                c.value = -1
            return
        share = max(0, total_messages) // len(self.credits)
        for c in self.credits:
            c.value = share

    def total_sent(self) -> int:
        return sum(v.value for v in self.sent)

    def total_acked(self) -> int:
        return sum(v.value for v in self.acked)

    def failures(self) -> int:
        return sum(v.value for v in self.failed) + sum(1 for p in self.procs if p.exitcode not in (0, None))

    def finish(self, timeout: float = 300) -> None:
        """Stop publishing; wait until every process has its PUBACKs and wrote its ledger."""
        self.stop_event.set()
        self.go.set()
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p.pid is None:  # never started
                continue
            p.join(max(1.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)

    def ledger_paths(self) -> list[Path]:
        return [Path(s.ledger_path) for s in self.specs if s.ledger_path]
