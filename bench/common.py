"""What every stage shares: the run's stack and settings, the fleet, daemons, monitoring, windows,
profiles."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from bench import profiling
from bench.config import TARGETS, BenchConfig
from bench.daemons import bench_daemon
from bench.fleet import EventEndpoint, LoadEndpoint, event_endpoints, load_endpoints, seed_bench_fleet
from bench.model import ProcessUsage, StageResult
from bench.monitor import Monitor, kafka_jit_cpu_s, metric_sum, parse_metrics
from bench.stackenv import BenchStack
from f2_platform.stack.daemons import DaemonProcess
from streaming.settings import ConnectionSettings

Say = Callable[[str], None]

# Device ids of the synthetic portfolios (far above the registry's identity ids, below 2**31).
SINK_DEVICES = 1_000_000_000
COPY_REFERENCE_DEVICES = 1_100_000_000
COPY_LATEST_REFERENCE_DEVICES = 1_200_000_000
SYNTHETIC_DEVICES = 1_000_000_000
KAFKA_JIT = "kafka.jit_cpu_s"  # a monitor series: CPU seconds of the broker's JIT compiler threads


class Scraper:
    """A daemon's /metrics, parsed, fetched at most once per sample however many series read it."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self._at = 0.0
        self._parsed: dict[Any, float] | None = None

    def parsed(self) -> dict[Any, float] | None:
        now = time.monotonic()
        if self._parsed is None or now - self._at > 0.1:
            text = self.daemon.metrics()
            if text is not None:
                self._parsed = parse_metrics(text)
                self._at = now
        return self._parsed

    def value(self, name: str, **labels: str) -> float | None:
        parsed = self.parsed()
        return None if parsed is None else metric_sum(parsed, name, **labels)

    def histogram(self, name: str, fresh: bool = False, **labels: str) -> dict[float, float]:
        if fresh:
            self._parsed = None
        parsed = self.parsed() or {}
        out: dict[float, float] = {}
        want = set(labels.items())
        for (n, ls), v in parsed.items():
            if n == f"{name}_bucket" and want <= set(ls):
                le = dict(ls)["le"]
                bound = float("inf") if le == "+Inf" else float(le)
                out[bound] = out.get(bound, 0.0) + v
        return out


class Run:
    def __init__(self, bs: BenchStack, config: BenchConfig, raw_dir: Path, say: Say) -> None:
        self.bs = bs
        self.config = config
        self.raw_dir = raw_dir
        self.say = say
        self.reference: dict[str, float] = {}  # figures the ratios are taken against

    @property
    def conn(self) -> ConnectionSettings:
        return self.bs.conn

    @cached_property
    def endpoints(self) -> list[LoadEndpoint]:
        started = time.monotonic()
        fleet = seed_bench_fleet(self.conn.registry_dsn, self.config.controllers)
        eps = load_endpoints(self.conn.registry_dsn, fleet)
        self.say(
            f"bench fleet: {self.config.controllers} controllers, {len(eps)} frame sensors "
            f"({time.monotonic() - started:.1f} s)"
        )
        return eps

    @property
    def readings_per_frame(self) -> float:
        eps = self.endpoints
        return sum(ep.readings_per_frame for ep in eps) / len(eps)

    @cached_property
    def event_endpoints(self) -> list[EventEndpoint]:
        """The fleet's status and reader components (none when the run sends no events)."""
        if self.config.event_share <= 0:
            return []
        from simulator.fingerprints import CredentialKey

        env = self.bs.env
        key = CredentialKey(env["F2_CREDENTIAL_KEY_ID"], env["F2_CREDENTIAL_SECRET"].encode())
        fleet = seed_bench_fleet(self.conn.registry_dsn, self.config.controllers)
        return event_endpoints(self.conn.registry_dsn, fleet, key)

    @property
    def frame_share(self) -> float:
        """The share of the published messages that are frames."""
        return 1.0 - (self.config.event_share if self.event_endpoints else 0.0)

    @property
    def records_per_message(self) -> float:
        """What the sink stores per published message of the mix on average: readings of frames, and readings
        and events of status and reader messages (the sink counts both in f2_messages_out_total)."""
        evs = self.event_endpoints
        events = sum(ep.records() for ep in evs) / len(evs) if evs else 0.0
        return self.frame_share * self.readings_per_frame + (1.0 - self.frame_share) * events

    def daemons(self, kind: str, count: int) -> list[DaemonProcess]:
        return [bench_daemon(kind, i, self.bs.env, self.raw_dir / "logs" / f"{kind}-{i}.log") for i in range(count)]

    def monitor(self) -> Monitor:
        m = Monitor(self.config.sample_interval_s)
        for name, pid in self.bs.service_pids().items():
            m.track(name, "service", pid, tree=name == "postgres")
        kafka = self.bs.kafka_pids()
        if kafka:
            m.counter(KAFKA_JIT, partial(kafka_jit_cpu_s, kafka))
        m.track("bench", "bench", os.getpid())
        return m

    @staticmethod
    def count_series(
        m: Monitor, series: str, daemons: list[DaemonProcess], metric: str, **labels: str
    ) -> list[Scraper]:
        scrapers = [Scraper(d) for d in daemons]

        def total() -> float | None:
            values = [s.value(metric, **labels) for s in scrapers]
            return None if any(v is None for v in values) else sum(v for v in values if v is not None)

        m.counter(series, total)
        return scrapers

    def track_daemons(self, m: Monitor, daemons: list[DaemonProcess]) -> None:
        for d in daemons:
            m.track(d.name, "daemon", d.running_pid())

    def wait_window(
        self, m: Monitor, started: Callable[[], bool], daemons: list[DaemonProcess], what: str, timeout: float = 120
    ) -> tuple[float, float]:
        """Wait for the first progress, then the warm-up; returns the window (stage times) about to begin."""
        deadline = time.monotonic() + timeout
        while not started():
            self.check_alive(daemons)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {timeout:.0f} s")
            time.sleep(0.1)
        self.sleep(self.config.warmup_s, daemons)
        start = m.sample().t
        return start, start + self.config.duration_s

    def sleep_until(
        self, m: Monitor, t: float, daemons: list[DaemonProcess], tick: Callable[[], None] | None = None
    ) -> None:
        while m.now() < t:
            self.check_alive(daemons)
            if tick is not None:
                tick()
            time.sleep(min(0.1, max(0.0, t - m.now())))

    def sleep(self, seconds: float, daemons: list[DaemonProcess], tick: Callable[[], None] | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check_alive(daemons)
            if tick is not None:
                tick()
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    @staticmethod
    def check_alive(daemons: list[DaemonProcess]) -> None:
        for d in daemons:
            if not d.alive():
                raise RuntimeError(f"{d.name} exited during the run; last lines of {d.log_path}:\n{d.tail()}")

    def usages(self, m: Monitor, start: float, end: float, units: float | None) -> list[ProcessUsage]:
        window = max(1e-9, end - start)
        rss_target = TARGETS["daemon_peak_rss_mb"]
        out = []
        ours = 0.0
        for name, tr in m.tracked.items():
            cpu = m.cpu_between(name, start, end)
            ours += cpu
            peak_mb = tr.rss_peak / 2**20
            daemon = tr.role == "daemon"
            out.append(
                ProcessUsage(
                    name=name,
                    role=tr.role,
                    pid=tr.proc.pid,
                    cpu_s=cpu,
                    cpu_share=cpu / window,
                    cpu_s_per_1000=(cpu / units * 1000) if units else None,
                    peak_rss_mb=peak_mb,
                    rss_target=rss_target.text if daemon else None,
                    rss_passed=rss_target.check(peak_mb) if daemon else None,
                )
            )
        other = max(0.0, m.machine_busy_between(start, end) - ours)
        out.append(ProcessUsage("other processes on the machine", "other", 0, other, other / window, None, 0.0))
        if KAFKA_JIT in m.sources:
            # Part of kafka's line above: CPU a long-running broker would not spend.
            jit = max(0.0, m.value_at(KAFKA_JIT, end) - m.value_at(KAFKA_JIT, start))
            out.append(ProcessUsage("kafka: of which its JIT compiler", "service", 0, jit, jit / window, None, 0.0))
        return out

    def measured_window(
        self, m: Monitor, result: StageResult, stage: str, daemons: list[DaemonProcess], tick: Callable[[], None]
    ) -> tuple[float, float]:
        """Warm up, then run the measured window (profiling the daemons when asked); its (start, end)."""
        cfg = self.config
        self.sleep(cfg.warmup_s, daemons, tick)
        ws = m.sample().t
        we = ws + cfg.duration_s
        recs = self.profile_start(stage, daemons, cfg.duration_s)
        self.sleep_until(m, we, daemons, tick)
        m.sample()
        self.profile_finish(result, recs)
        return ws, we

    # --- profiles ------------------------------------------------------------------------------------------
    def profile_start(self, stage: str, daemons: list[DaemonProcess], seconds: float) -> list[profiling.Recording]:
        if not self.config.profile:
            return []
        recs = []
        for d in daemons:
            rec = profiling.start(
                f"{stage}-{d.name}", d.running_pid(), seconds, self.raw_dir / "profiles", self.config.profile_rate_hz
            )
            if rec is not None:
                recs.append(rec)
        if not recs:
            self.say("py-spy not found: no profiles of the daemons")
        database = profiling.start_database(
            f"{stage}-postgres", seconds, self.raw_dir / "profiles", self.config.profile_rate_hz
        )
        if database is None:
            self.say("perf not found (make provision installs linux-perf): no profile of PostgreSQL")
        else:
            recs.append(database)
        return recs

    @staticmethod
    def profile_finish(result: StageResult, recs: list[profiling.Recording]) -> None:
        for rec in recs:
            result.profiles[rec.name] = profiling.finish(rec)
