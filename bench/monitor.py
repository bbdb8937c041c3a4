"""Sampling during a stage: the daemons' Prometheus counters, and CPU seconds and RSS of every process
involved (daemons, load generators, the stack's services, the bench itself) through psutil."""

from __future__ import annotations

import bisect
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text format -> {(name, sorted labels): value} for the platform's f2_* series."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("f2_"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group("labels") or "")))
        try:
            out[(m.group("name"), labels)] = float(m.group("value"))
        except ValueError:
            continue
    return out


def metric_sum(parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in parsed.items() if n == name and want <= set(ls))


def peak_rss_kernel(pid: int) -> float | None:
    """VmHWM: the largest resident set the process ever had, in bytes (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def jit_compiler_cpu_s(pid: int) -> float | None:
    """CPU seconds HotSpot's JIT compiler threads ('C1 CompilerThre', 'C2 CompilerThre') of a JVM have used;
    None when the process has none (or is gone)."""
    task = Path(f"/proc/{pid}/task")
    ticks = 0
    found = False
    try:
        threads = list(task.iterdir())
    except OSError:
        return None
    for thread in threads:
        try:
            if "CompilerThre" not in (thread / "comm").read_text():
                continue
            fields = (thread / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        found = True
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _CLOCK_TICKS if found else None


def kafka_jit_cpu_s(pids: list[int]) -> float | None:
    """The JIT compiler CPU seconds of every Kafka node together (one, or three of a cluster); None when none
    of them can be read."""
    values = [v for v in (jit_compiler_cpu_s(pid) for pid in pids) if v is not None]
    return sum(values) if values else None


@dataclass
class Tracked:
    name: str
    role: str  # daemon | generator | service | bench
    proc: psutil.Process
    tree: bool = False  # include children (PostgreSQL backends)
    cpu: list[float] = field(default_factory=list)
    rss_peak: float = 0.0
    last_cpu: float = 0.0
    gone: bool = False

    def read(self) -> tuple[float, float]:
        if self.gone:
            return self.last_cpu, 0.0
        try:
            with self.proc.oneshot():
                t = self.proc.cpu_times()
                cpu = t.user + t.system
                rss = float(self.proc.memory_info().rss)
            if self.tree:
                for child in self.proc.children(recursive=True):
                    try:
                        ct = child.cpu_times()
                        cpu += ct.user + ct.system
                    except psutil.Error:
                        continue
            # A tree loses the CPU of children that exited: never let the total go backwards.
            cpu = max(cpu, self.last_cpu)
        except psutil.Error:
            self.gone = True
            return self.last_cpu, 0.0
        self.last_cpu = cpu
        self.rss_peak = max(self.rss_peak, rss)
        if not self.tree:
            hwm = peak_rss_kernel(self.proc.pid)
            if hwm is not None:
                self.rss_peak = max(self.rss_peak, hwm)
        return cpu, rss


@dataclass
class Sample:
    t: float
    counters: dict[str, float]
    cpu: dict[str, float]
    machine_busy: float  # CPU seconds the whole machine spent busy, cumulative
    rss: dict[str, float] = field(default_factory=dict)  # bytes; absent once a process is gone


class Monitor:
    """A background thread sampling counters and processes every `interval` seconds (and on demand)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.t0 = time.monotonic()
        self.samples: list[Sample] = []
        self.sources: dict[str, Callable[[], float | None]] = {}
        self.tracked: dict[str, Tracked] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, float] = {}

    def counter(self, name: str, fn: Callable[[], float | None]) -> None:
        with self._lock:
            self.sources[name] = fn

    def track(self, name: str, role: str, pid: int, tree: bool = False) -> None:
        try:
            tracked = Tracked(name, role, psutil.Process(pid), tree)
        except psutil.Error:
            return
        with self._lock:
            self.tracked[name] = tracked

    def start(self) -> Monitor:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> Sample:
        with self._lock:
            t = time.monotonic() - self.t0
            counters = {}
            for name, fn in self.sources.items():
                try:
                    value = fn()
                except Exception:
                    value = None
                counters[name] = self._last.get(name, 0.0) if value is None else float(value)
                self._last[name] = counters[name]
            cpu, rss = {}, {}
            for name, tr in self.tracked.items():
                cpu[name], resident = tr.read()
                if resident:
                    rss[name] = resident
            ct = psutil.cpu_times()
            busy = sum(ct) - ct.idle - getattr(ct, "iowait", 0.0)
            s = Sample(t, counters, cpu, busy, rss)
            self.samples.append(s)
            return s

    def now(self) -> float:
        return time.monotonic() - self.t0

    def latest(self, name: str) -> float:
        return self._last.get(name, 0.0)

    # --- evaluation ----------------------------------------------------------------------------------------
    def value_at(self, name: str, t: float) -> float:
        """A counter at stage time t, linearly interpolated between samples."""
        times = [s.t for s in self.samples]
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return self.samples[0].counters.get(name, 0.0)
        if i >= len(self.samples):
            return self.samples[-1].counters.get(name, 0.0)
        a, b = self.samples[i - 1], self.samples[i]
        va, vb = a.counters.get(name, 0.0), b.counters.get(name, 0.0)
        return va if b.t == a.t else va + (vb - va) * (t - a.t) / (b.t - a.t)

    def rate(self, name: str, start: float, end: float) -> float:
        return (self.value_at(name, end) - self.value_at(name, start)) / max(1e-9, end - start)

    def cpu_between(self, name: str, start: float, end: float) -> float:
        def at(t: float) -> float:
            best = min(self.samples, key=lambda s: abs(s.t - t))
            return best.cpu.get(name, 0.0)

        return max(0.0, at(end) - at(start))

    def rss_between(self, name: str, start: float, end: float) -> list[float]:
        """The resident set sizes (bytes) sampled for a process inside [start, end]."""
        return [s.rss[name] for s in self.samples if start <= s.t <= end and name in s.rss]

    def machine_busy_between(self, start: float, end: float) -> float:
        a = min(self.samples, key=lambda s: abs(s.t - start))
        b = min(self.samples, key=lambda s: abs(s.t - end))
        return max(0.0, b.machine_busy - a.machine_busy)

    def series(self, name: str, scale: float = 1.0, span: float = 1.0) -> list[tuple[float, float]]:
        """Per-second rate of a counter over the last `span` seconds at each sample (for the charts: batches
        make counters move in steps, so rates between consecutive samples alone would zigzag)."""
        out = []
        a = 0
        for b in range(1, len(self.samples)):
            sb = self.samples[b]
            while a < b - 1 and sb.t - self.samples[a + 1].t >= span:
                a += 1
            sa = self.samples[a]
            if sb.t - sa.t > 1e-3:
                rate = (sb.counters.get(name, 0.0) - sa.counters.get(name, 0.0)) / (sb.t - sa.t)
                out.append((round(sb.t, 3), rate * scale))
        return out

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)
