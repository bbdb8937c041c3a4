"""End to end: MQTT -> bridge -> f2.raw -> processor -> f2.decoded -> sink -> decoded_data, all daemons real.

1. Sustained maximum: the publishers run in a closed loop, never more than `backlog_frames` frames ahead of
   what the sink has committed, so the pipeline runs flat out while every queue stays bounded. The rate is
   the sink's committed records (readings and events) per second over the window, in messages of the
   traffic mix, of which the frames are reported against the target. Afterwards every reading and every
   event of every message the broker acknowledged (the ledgers) is compared with decoded_data and
   device_events: nothing lost, nothing extra.
2. Latency: at each level (25%, 50%, 90% of that maximum) the publishers send at a fixed rate with live
   device timestamps; a poller records when rows of a sample of devices become visible (committed), and the
   sink's own latency histogram is read as a cross-check. Each level is reconciled the same way.
"""

from __future__ import annotations

import math
import time

from bench import kafkatools as kt
from bench.common import Run, Scraper
from bench.config import E2E_SUSTAIN_S
from bench.latency import (
    RowPoller,
    histogram_delta,
    histogram_quantile,
    hop_latencies,
    percentile,
    share_within,
)
from bench.model import LatencySummary, Measure, StageResult
from bench.monitor import Monitor
from bench.mqttload import Publishers
from bench.stages import claim_pipeline, publishers, reconcile_ledgers, skip_pipeline_to_end, start_publishers
from f2_platform.stack.daemons import DaemonProcess, start_all, stop_all
from streaming.kafka import topics

LATENCY_SAMPLE_ROWS_PER_S = 300
MAX_STORED_LATENCIES = 2000


class _Generated:
    """Messages acknowledged by the broker over the whole stage (one publisher set per phase)."""

    def __init__(self) -> None:
        self.done = 0
        self.current: Publishers | None = None

    def __call__(self) -> float:
        return float(self.done + (self.current.total_acked() if self.current else 0))

    def retire(self) -> None:
        if self.current is not None:
            self.done += self.current.total_acked()
            self.current = None


def _sink_histogram(scrapers: list[Scraper]) -> dict[float, float]:
    total: dict[float, float] = {}
    for s in scrapers:
        for le, v in s.histogram("f2_end_to_end_latency_seconds", fresh=True, daemon="sink").items():
            total[le] = total.get(le, 0.0) + v
    return total


def e2e_stage(run: Run) -> StageResult:
    cfg = run.config
    result = StageResult("e2e", "frames", cfg.duration_s)
    conn = run.conn
    claim_pipeline(run)
    dead0 = kt.end_offsets(conn, topics.DEADLETTER)
    rpm = run.records_per_message
    bridges = run.daemons("bridge", cfg.bridges)
    processors = run.daemons("processor", cfg.processors)
    sinks = run.daemons("sink", cfg.sinks)
    daemons = bridges + processors + sinks
    m = run.monitor()
    generated = _Generated()
    try:
        start_all(daemons)
        run.track_daemons(m, daemons)
        run.count_series(m, "bridge.out", bridges, "f2_messages_out_total", daemon="bridge")
        run.count_series(m, "processor.in", processors, "f2_messages_in_total", daemon="processor")
        sink_scrapers = run.count_series(m, "sink.out", sinks, "f2_messages_out_total", daemon="sink")
        m.counter("generator.acked", generated)
        m.start()
        sustained = _max_phase(run, result, m, daemons, generated)
        run.reference["e2e_frames_per_s"] = sustained  # the backpressure stage's full load
        for level in cfg.levels:
            if sustained <= 0:
                break
            result.latency.append(_level_phase(run, result, m, daemons, sink_scrapers, generated, level, sustained))
        stop_all(daemons)
        dead = kt.count_records(conn, topics.DEADLETTER, dead0)
        if dead:
            result.notes.append(f"{dead} records were dead-lettered during the run (expected none)")
            for rec in result.reconciliations.values():
                rec.ok = False
        result.timeseries = {
            "generator msg/s": m.series("generator.acked"),
            "bridge msg/s": m.series("bridge.out"),
            "processor frames/s": m.series("processor.in"),
            "sink msg/s": m.series("sink.out", 1 / rpm),
        }
    finally:
        try:
            stop_all(daemons)
        finally:
            if generated.current is not None:
                generated.current.finish(10)
            m.stop()
        skip_pipeline_to_end(run)
    return result


def _start_publishers(run: Run, m: Monitor, generated: _Generated, tag: str, rate: float = 0.0) -> Publishers:
    pubs = publishers(run, f"e2e-{tag}", rate_per_s=rate)
    start_publishers(m, pubs, f"generator-{tag}")
    generated.current = pubs
    return pubs


def _max_phase(run: Run, result: StageResult, m: Monitor, daemons: list[DaemonProcess], generated: _Generated) -> float:
    cfg = run.config
    rpm = run.records_per_message
    pubs = _start_publishers(run, m, generated, "max")
    rows0 = m.sample().counters["sink.out"]

    def tick() -> None:
        pubs.set_credit(int((m.latest("sink.out") - rows0) / rpm) + cfg.backlog_frames)
        if pubs.failures():
            raise RuntimeError("a load generator failed (see the bench output)")

    tick()
    pubs.begin()
    deadline = time.monotonic() + 120
    while m.latest("sink.out") <= rows0:
        run.check_alive(daemons)
        tick()
        if time.monotonic() > deadline:
            raise TimeoutError("no rows committed within 120 s of the first publish")
        time.sleep(0.1)
    ws, we = run.measured_window(m, result, "e2e", daemons, tick)
    pubs.finish()
    if pubs.failures():
        raise RuntimeError("a load generator failed (see the bench output)")
    if m.value_at("sink.out", we) <= m.value_at("sink.out", ws):
        # The closed loop moves in steps of what the sink commits: a window shorter than one step measures a
        # rate of nothing, which is no figure of the pipeline (nor a reason to skip the latency levels silently).
        raise RuntimeError(
            f"the sinks committed nothing in the {cfg.duration_s:g} s measured window after "
            f"{cfg.warmup_s:g} s of warm-up: with {cfg.backlog_frames:,} frames in flight the pipeline committed "
            "slower than once per window; run with a longer --duration (and --warmup)"
        )
    messages_rate = m.rate("sink.out", ws, we) / rpm
    frames_rate = messages_rate * run.frame_share
    result.window = (ws, we)
    result.processes = run.usages(m, ws, we, frames_rate * (we - ws))
    rec, events_rec = reconcile_ledgers(run, pubs)
    generated.retire()
    result.reconciliations["sustained maximum: ledger readings = decoded_data rows"] = rec
    if events_rec is not None:
        result.reconciliations["sustained maximum: ledger events = device_events, component_states"] = events_rec
    measure = Measure.against(
        "sustained frames/s, MQTT -> committed rows",
        frames_rate,
        "frames/s",
        "e2e_frames_per_s",
        note=f"{frames_rate * run.readings_per_frame:,.0f} readings/s",
    )
    reconciled = rec.ok and (events_rec is None or events_rec.ok)
    if events_rec is not None:
        measure.note += f", with {messages_rate - frames_rate:,.0f} status and reader messages/s (events)"
    if measure.passed and (not reconciled or cfg.duration_s < E2E_SUSTAIN_S):
        measure.passed = False
        measure.note += (
            "; not reconciled"
            if not reconciled
            else f"; window {cfg.duration_s:.0f} s is shorter than the {E2E_SUSTAIN_S:.0f} s the target asks"
        )
    result.measures += [
        measure,
        Measure("messages/s of the traffic mix, MQTT -> committed rows and events", messages_rate, "msg/s"),
        Measure("bridge messages/s in the same window", m.rate("bridge.out", ws, we), "msg/s"),
        Measure("processor frames/s in the same window", m.rate("processor.in", ws, we), "frames/s"),
    ]
    return frames_rate


def _sample_series(run: Run, rate: float) -> list[tuple[int, int]]:
    """(device id, datapoint id) of every reading of a sample of the fleet's frame sensors."""
    rows_per_s = rate * run.frame_share * run.readings_per_frame
    step = max(1, math.ceil(rows_per_s / LATENCY_SAMPLE_ROWS_PER_S))
    return sorted({(ep.device_id, dp) for ep in run.endpoints[::step] for dp, _ in ep.variants[0][1]})


def _level_phase(
    run: Run,
    result: StageResult,
    m: Monitor,
    daemons: list[DaemonProcess],
    sink_scrapers: list[Scraper],
    generated: _Generated,
    level: float,
    sustained: float,
) -> LatencySummary:
    cfg = run.config
    rpm = run.records_per_message
    rate = level * sustained  # frames/s; the publishers send the mix, events on top
    tag = f"{round(level * 100)}pct"
    pubs = _start_publishers(run, m, generated, tag, rate / run.frame_share)
    start = m.sample()
    acked0, rows0 = start.counters["generator.acked"], start.counters["sink.out"]
    pubs.begin()
    run.sleep(cfg.warmup_s, daemons)
    ws = m.sample().t
    we = ws + cfg.duration_s
    poller = RowPoller(run.conn.timeseries_dsn, _sample_series(run, rate))
    hist0 = _sink_histogram(sink_scrapers)
    wall = time.time()
    poller.start(wall, wall + cfg.duration_s)
    raw0, dec0 = kt.end_offsets(run.conn, topics.RAW), kt.end_offsets(run.conn, topics.DECODED)
    run.sleep_until(m, we, daemons)
    at_end = m.sample()
    raw1, dec1 = kt.end_offsets(run.conn, topics.RAW), kt.end_offsets(run.conn, topics.DECODED)
    result.phases[f"{level:.0%} load"] = (ws, we)
    pubs.finish()
    if pubs.failures():
        raise RuntimeError("a load generator failed (see the bench output)")
    achieved = m.rate("generator.acked", ws, we) * run.frame_share
    backlog = (at_end.counters["generator.acked"] - acked0) - (at_end.counters["sink.out"] - rows0) / rpm
    rec, events_rec = reconcile_ledgers(run, pubs)
    if events_rec is not None:
        # One verdict per level: the readings' and the events'.
        rec.ok = rec.ok and events_rec.ok
        rec.detail += f"; events: {events_rec.expected:,} in the ledgers, " + events_rec.detail
    generated.retire()
    time.sleep(3 * poller.interval)
    values = poller.stop()
    if poller.error:
        result.notes.append(f"latency poller at {tag}: {poller.error}")
    delta = histogram_delta(hist0, _sink_histogram(sink_scrapers))
    hops = hop_latencies(
        kt.sample_records(run.conn, topics.RAW, raw0, raw1), kt.sample_records(run.conn, topics.DECODED, dec0, dec1)
    )
    hops["committed in the database"] = {
        "p50": percentile(values, 50) or 0.0,
        "p99": percentile(values, 99) or 0.0,
        "samples": len(values),
    }
    ordered = sorted(values)
    if len(ordered) > MAX_STORED_LATENCIES:
        step = len(ordered) / MAX_STORED_LATENCIES
        stored = [ordered[int(i * step)] for i in range(MAX_STORED_LATENCIES)] + [ordered[-1]]
    else:
        stored = ordered
    return LatencySummary(
        level=level,
        offered_frames_per_s=rate,
        achieved_frames_per_s=achieved,
        kept_up=backlog <= max(2.0 * rate / run.frame_share, 1000),
        samples=len(values),
        p50_s=percentile(values, 50),
        p95_s=percentile(values, 95),
        p99_s=percentile(values, 99),
        max_s=ordered[-1] if ordered else None,
        histogram_share_within_1s=share_within(delta, 1.0),
        histogram_p99_s=histogram_quantile(delta, 0.99),
        resolution_s=poller.interval / 2,
        reconciliation=rec,
        hops=hops,
        values_s=[round(v, 4) for v in stored],
    )
