"""Backpressure: every sink stopped for `backpressure_stop_s` (60 s) under full load, then started again.

The publishers send at the end-to-end stage's sustained maximum (the portfolio's 8,000 frames/s when that
stage did not run) with live device timestamps. After the warm-up every sink stops (SIGTERM: it stores and
commits what it holds); the bridge and the processors keep going and the readings queue up in f2.decoded.
When the sinks start again the load ends, and the sinks work the backlog off. Reported: the resident memory
of every daemon at the stop, at its end and at its peak (a daemon that grew with the backlog would show it),
the backlog, how long the catch-up took, and every acknowledged message reconciled against decoded_data and
(the events of the traffic mix) device_events.
"""

from __future__ import annotations

from bench import kafkatools as kt
from bench.common import Run
from bench.config import PORTFOLIO_FRAMES_PER_S
from bench.model import Measure, StageResult
from bench.monitor import Monitor
from bench.mqttload import Publishers
from bench.stages import claim_pipeline, publishers, reconcile_ledgers, skip_pipeline_to_end, start_publishers
from f2_platform.stack.daemons import DaemonProcess, start_all, stop_all
from streaming.kafka import topics


def backpressure_stage(run: Run) -> StageResult:
    cfg = run.config
    conn = run.conn
    result = StageResult("backpressure", "frames", cfg.backpressure_stop_s)
    claim_pipeline(run)
    sustained = run.reference.get("e2e_frames_per_s")
    rate = sustained or PORTFOLIO_FRAMES_PER_S
    bridges = run.daemons("bridge", cfg.bridges)
    processors = run.daemons("processor", cfg.processors)
    sinks = run.daemons("sink", cfg.sinks)
    upstream = bridges + processors
    m = run.monitor()
    pubs: Publishers | None = None
    try:
        start_all(upstream + sinks)
        run.track_daemons(m, upstream + sinks)
        run.count_series(m, "bridge.out", bridges, "f2_messages_out_total", daemon="bridge")
        run.count_series(m, "processor.in", processors, "f2_messages_in_total", daemon="processor")
        # `rate` frames/s, and the traffic mix's events on top.
        pubs = publishers(run, "backpressure", rate_per_s=rate / run.frame_share)
        m.counter("generator.acked", pubs.total_acked)
        start_publishers(m, pubs)
        m.start()
        pubs.begin()
        run.sleep(cfg.warmup_s, upstream + sinks)
        stopped_at = m.sample().t
        stop_all(sinks)
        run.sleep(cfg.backpressure_stop_s, upstream)
        restarted_at = m.sample().t
        backlog = kt.lag(conn, topics.GROUP_SINK, topics.DECODED)
        offered = m.rate("generator.acked", stopped_at, restarted_at) * run.frame_share
        decoded = m.rate("processor.in", stopped_at, restarted_at)
        for sink in sinks:
            sink.start()
        pubs.finish()
        if pubs.failures():
            raise RuntimeError("a load generator failed (see the bench output)")
        for sink in sinks:
            sink.wait_healthy()
            m.track(f"{sink.name} restarted", "daemon", sink.running_pid())
        rec, events_rec = reconcile_ledgers(run, pubs)
        caught_up_at = m.sample().t
        stop_all(upstream + sinks)
        m.sample()
        result.reconciliations["every acknowledged reading = decoded_data rows"] = rec
        if events_rec is not None:
            result.reconciliations["every acknowledged event = device_events, component_states"] = events_rec
        result.window = (stopped_at, restarted_at)
        result.phases["catch-up"] = (restarted_at, caught_up_at)
        result.processes = run.usages(m, stopped_at, caught_up_at, offered * (restarted_at - stopped_at))
        source = "the end-to-end stage's sustained maximum" if sustained else "the portfolio's rate"
        result.measures += [
            Measure(
                "frames/s acknowledged by the broker while the sinks were stopped",
                offered,
                "frames/s",
                note=f"offered {rate:,.0f}: {source}",
            ),
            Measure("processor frames/s while the sinks were stopped", decoded, "frames/s"),
            Measure("backlog in f2.decoded when the sinks started again", backlog, "records"),
            Measure(
                "catch-up: sinks started again -> every reading in decoded_data",
                caught_up_at - restarted_at if rec.ok and (events_rec is None or events_rec.ok) else None,
                "s",
            ),
        ]
        result.measures += _memory_measures(m, upstream + sinks, stopped_at, restarted_at, caught_up_at)
        result.timeseries = {
            "generator msg/s": m.series("generator.acked"),
            "bridge msg/s": m.series("bridge.out"),
            "processor frames/s": m.series("processor.in"),
        }
    finally:
        try:
            stop_all(upstream + sinks)
        finally:
            if pubs is not None:
                pubs.finish(10)
            m.stop()
        skip_pipeline_to_end(run)
    return result


def _memory_measures(
    m: Monitor, daemons: list[DaemonProcess], stopped_at: float, restarted_at: float, caught_up_at: float
) -> list[Measure]:
    """Per daemon: resident memory at the stop and at its end (growth while the sinks were away), and the peak
    of the restarted sinks while they worked the backlog off."""
    out = []
    for d in daemons:
        if d.kind == "sink":
            peak = max(m.rss_between(f"{d.name} restarted", restarted_at, caught_up_at), default=None)
            out.append(Measure(f"{d.name} peak RSS while catching up", _mb(peak), "MB"))
            continue
        during = m.rss_between(d.name, stopped_at, restarted_at)
        if not during:
            continue
        out.append(
            Measure(
                f"{d.name} RSS growth while the sinks were stopped",
                _mb(during[-1] - during[0]),
                "MB",
                note=f"{_mb(during[0]):.0f} MB at the stop, {_mb(during[-1]):.0f} MB after it, "
                f"peak {_mb(max(during)):.0f} MB",
            )
        )
    return out


def _mb(value: float | None) -> float | None:
    return None if value is None else value / 2**20
