"""The result of a bench run: plain dataclasses, written as JSON and rendered as Markdown and charts."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import TARGETS
from simulator.reconcile import Reconciliation

__all__ = ["BenchResult", "LatencySummary", "Measure", "ProcessUsage", "Reconciliation", "StageResult"]


@dataclass
class Measure:
    """One reported number, with its target (when the issue sets one) and its ratios to the references."""

    name: str
    value: float | None
    unit: str
    target: str | None = None
    passed: bool | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @staticmethod
    def against(name: str, value: float | None, unit: str, target_key: str, note: str = "") -> Measure:
        target = TARGETS[target_key]
        return Measure(name, value, unit, target.text, target.check(value), note=note)


@dataclass
class ProcessUsage:
    """CPU and memory of one process (or process tree) during a stage's measurement window."""

    name: str
    role: str  # daemon | generator | service | bench
    pid: int
    cpu_s: float  # CPU seconds (user + system) inside the window
    cpu_share: float  # cpu_s / window: 1.0 is one core busy all the time
    cpu_s_per_1000: float | None  # per 1,000 of the stage's unit (frames, messages or rows)
    peak_rss_mb: float  # the largest resident set seen (VmHWM where the kernel reports it)
    rss_target: str | None = None
    rss_passed: bool | None = None


@dataclass
class LatencySummary:
    level: float  # fraction of the sustained maximum offered
    offered_frames_per_s: float
    achieved_frames_per_s: float
    kept_up: bool  # the backlog at the end of the window stayed below one second of load
    samples: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    # From the sink's f2_end_to_end_latency_seconds histogram (a cross-check with bucket resolution).
    histogram_share_within_1s: float | None
    histogram_p99_s: float | None
    resolution_s: float
    reconciliation: Reconciliation | None = None
    # Cumulative latency from the device timestamp to each hop: {hop: {"p50": s, "p99": s, "samples": n}}
    hops: dict[str, dict[str, float]] = field(default_factory=dict)
    values_s: list[float] = field(default_factory=list)  # the samples, for the latency chart


@dataclass
class StageResult:
    name: str
    unit: str  # what cpu_s_per_1000 counts
    window_s: float
    measures: list[Measure] = field(default_factory=list)
    processes: list[ProcessUsage] = field(default_factory=list)
    reconciliations: dict[str, Reconciliation] = field(default_factory=dict)
    latency: list[LatencySummary] = field(default_factory=list)
    # series name -> [(seconds since the stage started, rate per second)]
    timeseries: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)  # start and end of the measurement window, stage time
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)  # further measured windows (e2e)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def measure(self, name: str) -> Measure | None:
        return next((m for m in self.measures if m.name == name), None)


@dataclass
class BenchResult:
    started_at: str
    finished_at: str
    machine: dict[str, Any]
    config: dict[str, Any]
    stages: list[StageResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    return value
