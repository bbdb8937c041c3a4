"""What a bench run measures and the targets it reports against (the performance issue)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from f2_platform.settings import REPO_ROOT

BRIDGE, PROCESSOR, SINK, E2E, REFERENCES = "bridge", "processor", "sink", "e2e", "references"
BACKPRESSURE = "backpressure"
ALL_STAGES: tuple[str, ...] = (REFERENCES, BRIDGE, PROCESSOR, SINK, E2E, BACKPRESSURE)
DEFAULT_OUTPUT_DIR = REPO_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Target:
    """One number of the issue: `value <op> threshold` passes."""

    threshold: float
    op: str  # ">=" or "<="
    text: str

    def check(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


# Targets on the reference 2-core machine, everything on one host (issue "Performance").
TARGETS: dict[str, Target] = {
    "bridge_msgs_per_s_per_process": Target(20_000, ">=", ">= 20,000 msg/s per process"),
    "processor_frames_per_s": Target(40_000, ">=", ">= 40,000 frames/s"),
    "sink_rows_per_s": Target(100_000, ">=", ">= 100,000 rows/s"),
    "sink_share_of_copy_reference": Target(0.60, ">=", ">= 60% of COPY+upsert"),
    "e2e_frames_per_s": Target(10_000, ">=", ">= 10,000 frames/s for 60 s, nothing lost"),
    "e2e_p99_at_50pct_s": Target(1.0, "<=", "p99 <= 1 s at 50% of max"),
    "daemon_peak_rss_mb": Target(300, "<=", "<= 300 MB"),
}
# The portfolio: 10,000 controllers with 24 sensors each.
PORTFOLIO_FRAMES_PER_S = 8_000.0
# The end-to-end target is "sustained for 60 s": a shorter window cannot pass it.
E2E_SUSTAIN_S = 60.0


@dataclass
class BenchConfig:
    duration_s: float = 60.0
    warmup_s: float = 10.0
    stages: tuple[str, ...] = ALL_STAGES
    output_dir: Path = DEFAULT_OUTPUT_DIR
    use_running_stack: bool = False
    # Generated controllers of the bench fleet (each: two ENV-S1, a PM-100, a PS-1, a DS-2, a reader, a strike,
    # a siren, a motion sensor and unregistered exit buttons, like `f2 simulate --controllers`); the load
    # generators drive its four frame sensors and, for `event_share` of the messages, the other components.
    controllers: int = 1000
    # Share of the MQTT messages that are status and reader messages (the events of the fleet's doors, exit
    # buttons, motion sensors, strikes, sirens and readers; the rest are frames): the stages that publish over
    # MQTT (bridge, e2e, backpressure) send this mix, the pre-filled processor and sink stages frames only.
    event_share: float = 0.1
    publishers: int = 2  # load generator processes (MQTT)
    bridges: int = 1
    processors: int = 1
    sinks: int = 1
    # Offered load of the latency runs, as fractions of the sustained end-to-end maximum.
    levels: tuple[float, ...] = (0.25, 0.5, 0.9)
    # Pre-filled topics hold `prefill_scale * target * (warm-up + duration)` records, so a stage that
    # meets its target never runs dry; a stage that drains its topic anyway is flagged.
    # 1.6: the processor stage runs at about 1.3 times its target.
    prefill_scale: float = 1.6
    # Frames the closed-loop generators keep in flight beyond what the sink has committed.
    backlog_frames: int = 30_000
    # Records of the sink's batches in the COPY references (the sink's own default batch size).
    reference_batch_rows: int = 10_000
    naive_batch_rows: int = 1_000
    profile: bool = False
    profile_rate_hz: int = 100
    kafka_partitions: int | None = None  # None: the stack's default
    # Kafka nodes of a hermetic stack: 1, or 3 for the KRaft cluster (replication factor 3, min.insync.replicas 2).
    kafka_brokers: int = 1
    # Each sample scrapes every daemon's /metrics: a processor renders one series per controller, and at
    # 0.5 s the scrapes took about a tenth of its CPU (Prometheus scrapes every 15 s).
    sample_interval_s: float = 1.0
    drain_timeout_s: float = 180.0
    # How long the backpressure stage keeps every sink stopped under full load.
    backpressure_stop_s: float = 60.0
    # At most this long the pipeline warms the broker up (until its JIT compiler is quiet) before the first
    # stage that uses Kafka; 0: no warm-up.
    broker_warmup_max_s: float = 180.0
    # Allow moving the daemons' consumer groups past unconsumed records of a running stack.
    force: bool = False

    def validate(self) -> None:
        unknown = [s for s in self.stages if s not in ALL_STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(ALL_STAGES)}")
        if self.duration_s <= 0 or self.warmup_s < 0 or self.backpressure_stop_s <= 0 or self.broker_warmup_max_s < 0:
            raise ValueError("duration and the sinks' stop must be positive, the warm-ups not negative")
        if not 0 <= self.event_share < 1:
            raise ValueError("--event-share is the share of messages that are events: at least 0, below 1")
        if not all(0 < level <= 1.5 for level in self.levels):
            raise ValueError("levels are fractions of the sustained maximum, e.g. 0.25,0.5,0.9")
        if self.kafka_brokers not in (1, 3):
            raise ValueError("--kafka-brokers: 1, or 3 for a KRaft cluster")
        if self.use_running_stack and self.kafka_brokers != 1:
            raise ValueError(
                "--kafka-brokers shapes the hermetic stack a run starts; the running stack keeps its own "
                "(F2_STACK_KAFKA_BROKERS when it was set up)"
            )
        for name in ("controllers", "publishers", "bridges", "processors", "sinks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
