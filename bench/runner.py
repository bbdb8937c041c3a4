"""One bench run: the stack, the stages in order, ratios to the references, clean-up, the written results."""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import kafkatools as kt
from bench import report
from bench.common import SYNTHETIC_DEVICES, Run
from bench.config import (
    ALL_STAGES,
    BACKPRESSURE,
    BRIDGE,
    E2E,
    PROCESSOR,
    REFERENCES,
    SINK,
    TARGETS,
    BenchConfig,
)
from bench.fleet import MAC_PREFIX
from bench.machine import cpu_probe_s, machine_info
from bench.model import BenchResult, Measure, StageResult
from bench.stackenv import BenchStack, bench_stack, prepare
from bench.warmup import warm_up_broker
from f2_platform.stack.manager import Stack
from streaming.kafka import topics

Say = Callable[[str], None]


def _stage_functions() -> dict[str, Callable[[Run], StageResult]]:
    from bench.backpressure import backpressure_stage
    from bench.e2e import e2e_stage
    from bench.references import references_stage
    from bench.stages import bridge_stage, processor_stage, sink_stage

    return {
        REFERENCES: references_stage,
        BRIDGE: bridge_stage,
        PROCESSOR: processor_stage,
        SINK: sink_stage,
        E2E: e2e_stage,
        BACKPRESSURE: backpressure_stage,
    }


def _utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_bench(config: BenchConfig, say: Say = print, stack: Stack | None = None) -> BenchResult:
    """Run the configured stages; `stack` (already up) replaces both the hermetic and the running stack."""
    config.validate()
    started = _utc()
    raw_dir = config.output_dir / "raw" / started.replace(":", "")
    machine = machine_info()
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
    result = BenchResult(started, started, machine, settings)
    context: AbstractContextManager[BenchStack]
    if stack is not None:
        context = nullcontext(prepare(stack, hermetic=False))
    else:
        if not config.use_running_stack:
            kafka = "Kafka" if config.kafka_brokers == 1 else f"a {config.kafka_brokers}-node Kafka cluster"
            say(f"starting a hermetic stack (PostgreSQL+TimescaleDB, Redis, {kafka}, Mosquitto) ...")
        context = bench_stack(config.use_running_stack, config.kafka_partitions, say, config.kafka_brokers)
    with context as bs:
        result.config["hermetic"] = bs.hermetic
        result.config["kafka_partitions"] = bs.stack.settings.kafka_partitions
        result.config["kafka_brokers"] = bs.stack.kafka.shape.brokers
        run = Run(bs, config, raw_dir, say)
        if not bs.hermetic:
            _preflight(run)
        functions = _stage_functions()
        try:
            warm = not config.broker_warmup_max_s
            for name in (s for s in ALL_STAGES if s in config.stages):
                if not warm and name != REFERENCES:
                    say(f"warming the broker up (at most {config.broker_warmup_max_s:g} s) ...")
                    try:
                        result.notes.append(warm_up_broker(run))
                    except Exception as exc:
                        result.notes.append(f"broker warm-up failed ({type(exc).__name__}: {exc}); measured cold")
                    say(result.notes[-1])
                    warm = True
                say(f"stage {name}: {config.warmup_s:g} s warm-up, {config.duration_s:g} s measured ...")
                t = time.monotonic()
                probe_before = cpu_probe_s()
                try:
                    stage = functions[name](run)
                except Exception as exc:
                    raw_dir.mkdir(parents=True, exist_ok=True)
                    (raw_dir / f"{name}-error.txt").write_text(traceback.format_exc())
                    stage = StageResult(name, "-", config.duration_s, error=f"{type(exc).__name__}: {exc}")
                stage.notes.append(_probe_note(result, probe_before, cpu_probe_s()))
                say(
                    f"stage {name}: done in {time.monotonic() - t:.0f} s"
                    + (f" (FAILED: {stage.error.splitlines()[0]})" if stage.error else "")
                )
                for m in stage.measures:
                    say(
                        f"  {m.name}: {report._num(m.value, m.unit)}"
                        + ("" if m.passed is None else f" [{'pass' if m.passed else 'miss'} {m.target}]")
                    )
                result.stages.append(stage)
        finally:
            if not bs.hermetic:
                _clean_up(run)
    _add_ratios(result, run.reference)
    _add_noise_note(result)
    result.finished_at = _utc()
    report.write_all(result, config.output_dir)
    return result


def _preflight(run: Run) -> None:
    """A running stack: its daemons must be stopped, and moving their groups must not skip unread records."""
    for group, topic in ((topics.GROUP_PROCESSOR, topics.RAW), (topics.GROUP_SINK, topics.DECODED)):
        if kt.group_members(run.conn, group):
            raise RuntimeError(
                f"consumer group {group} has active members: stop the stack's daemons first "
                "(f2 demo down) so the bench measures only its own processes"
            )
        behind = kt.lag(run.conn, group, topic)
        if behind and not run.config.force:
            raise RuntimeError(
                f"consumer group {group} has {behind} unread records on {topic}: the bench would "
                "skip them; let the pipeline drain first, or pass --force"
            )


def _clean_up(run: Run) -> None:
    """On a shared stack: remove the bench's rows (the registry fleet stays, reusable by the next run)."""
    try:
        device_ids = [ep.device_id for ep in run.endpoints] if "endpoints" in run.__dict__ else []
        with psycopg.connect(run.conn.timeseries_dsn, connect_timeout=10) as db:
            for table in ("decoded_data", "latest_values"):
                db.execute(
                    f"DELETE FROM {table} WHERE device_id >= %s OR device_id = ANY(%s)",  # noqa: S608
                    (SYNTHETIC_DEVICES, device_ids),
                )
            # The events of the bench fleet's components (its own MAC prefix).
            for table in ("device_events", "component_states", "controller_presence"):
                db.execute(f"DELETE FROM {table} WHERE controller_mac LIKE %s", (MAC_PREFIX + "%",))  # noqa: S608
    except psycopg.Error as exc:
        run.say(f"clean-up of the bench's rows failed: {exc}")


def _add_ratios(result: BenchResult, ref: dict[str, float]) -> None:
    naive_frames, naive_rows = ref.get("naive_frames_per_s"), ref.get("naive_rows_per_s")
    copy, copy_latest = ref.get("copy_upsert_rows_per_s"), ref.get("sink_transaction_rows_per_s")

    def ratio(m: Measure | None, key: str, base: float | None) -> None:
        if m is not None and m.value is not None and base:
            m.ratios[key] = m.value / base

    bridge = result.stage(BRIDGE)
    if bridge:
        ratio(bridge.measure("messages/s into Kafka"), "naive stage (frames/s)", naive_frames)
    processor = result.stage(PROCESSOR)
    if processor:
        ratio(processor.measure("frames/s (raw -> decoded, transactions on)"), "naive stage", naive_frames)
    sink = result.stage(SINK)
    if sink:
        rows = sink.measure("rows/s into decoded_data")
        ratio(rows, "COPY+upsert", copy)
        ratio(rows, "sink transaction w/o Kafka", copy_latest)
        ratio(rows, "naive stage", naive_rows)
        if rows is not None and rows.value is not None and copy:
            sink.measures.append(
                Measure.against(
                    "share of the COPY+upsert reference",
                    rows.value / copy,
                    "ratio",
                    "sink_share_of_copy_reference",
                )
            )
    e2e = result.stage(E2E)
    if e2e:
        sustained = e2e.measure("sustained frames/s, MQTT -> committed rows")
        ratio(sustained, "naive stage", naive_frames)
        if processor:
            p = processor.measure("frames/s (raw -> decoded, transactions on)")
            ratio(sustained, "processor stage", p.value if p else None)
        at_half = next((lat for lat in e2e.latency if lat.level == 0.5), None)
        if at_half is not None:
            target = TARGETS["e2e_p99_at_50pct_s"]
            e2e.measures.append(
                Measure(
                    "p99 latency at 50% of the sustained maximum",
                    at_half.p99_s,
                    "s",
                    target.text,
                    target.check(at_half.p99_s),
                )
            )


def _probe_note(result: BenchResult, before: float, after: float) -> str:
    at_start = float(result.machine.get("cpu_probe_s_at_start") or before)
    return (
        f"CPU probe (a fixed Python loop on one core): {before:.3f} s before the stage, {after:.3f} s after it, "
        f"{at_start:.3f} s at the run's start; the same work taking longer means a slower host at that time"
    )


def _add_noise_note(result: BenchResult) -> None:
    shares = [p.cpu_share for s in result.stages for p in s.processes if p.role == "other"]
    if shares and max(shares) > 0.15:
        result.notes.append(
            f"Other work on the machine used up to {max(shares):.2f} cores during the measured windows "
            f"(load average {result.machine.get('load_average_at_start')} at the start): these numbers are "
            "not final; rerun on a quiet machine."
        )
