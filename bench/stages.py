"""The isolated stages: bridge (MQTT -> f2.raw), processor (pre-filled f2.raw -> f2.decoded) and sink
(pre-filled f2.decoded -> decoded_data), each with the real daemon and its counts reconciled afterwards.

The daemons' consumer groups and topics have fixed names (docs/contracts.md), so before each stage the group is
moved to the end of its input topic: the daemon reads exactly what the stage wrote, never an earlier stage's
records, and leaves nothing behind for later stages or other tools.
"""

from __future__ import annotations

import contextlib
import time
from array import array
from collections import defaultdict
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Message

from bench import kafkatools as kt
from bench.common import SINK_DEVICES, Run
from bench.config import TARGETS
from bench.fleet import Portfolio, Stamper, payload
from bench.model import Measure, Reconciliation, StageResult
from bench.monitor import Monitor
from bench.mqttload import Publishers
from f2_platform.stack.daemons import start_all, stop_all
from streaming.kafka import topics


def publishers(run: Run, ledger_prefix: str | None = None, rate_per_s: float = 0.0) -> Publishers:
    conn = run.conn
    specs = Publishers.split(
        run.endpoints,
        run.config.publishers,
        run.event_endpoints,
        run.config.event_share,
        host=conn.mqtt_host,
        port=conn.mqtt_port,
        username=conn.mqtt_username,
        password=conn.mqtt_password,
    )
    for s in specs:
        s.rate_per_s = rate_per_s / len(specs)
        if ledger_prefix is not None:
            s.ledger_path = str(run.raw_dir / "ledgers" / f"{ledger_prefix}-publisher-{s.index}.jsonl")
    if ledger_prefix is not None:
        (run.raw_dir / "ledgers").mkdir(parents=True, exist_ok=True)
    return Publishers(specs)


def claim_group(run: Run, group: str, topic: str, linger_s: float = 60.0) -> kt.Offsets:
    """Move the (idle) group to the end of its topic; returns those offsets.

    Waits up to `linger_s` for members to leave: a daemon that had to be killed stays a member until its
    session times out (45 s)."""
    deadline = time.monotonic() + linger_s
    while kt.group_members(run.conn, group):
        if time.monotonic() > deadline:
            raise RuntimeError(f"consumer group {group} has active members: stop the stack's daemons before a bench")
        time.sleep(1.0)
    return kt.skip_to_end(run.conn, group, topic)


# The groups of the whole path's consumers, with the topic each reads.
PIPELINE_GROUPS = ((topics.GROUP_PROCESSOR, topics.RAW), (topics.GROUP_SINK, topics.DECODED))


def claim_pipeline(run: Run) -> None:
    for group, topic in PIPELINE_GROUPS:
        claim_group(run, group, topic)


def skip_pipeline_to_end(run: Run) -> None:
    """Leave nothing unconsumed behind for later stages."""
    for group, topic in PIPELINE_GROUPS:
        kt.skip_to_end(run.conn, group, topic)


def start_publishers(m: Monitor, pubs: Publishers, prefix: str = "generator") -> None:
    """Start the publisher processes and sample each as `<prefix>-<k>`; they publish once begun."""
    pubs.start()
    time.sleep(0.5)
    for k, pid in enumerate(pubs.pids()):
        m.track(f"{prefix}-{k}", "generator", pid)


def drop_ledgers(pubs: Publishers, reconciled: bool) -> None:
    """Ledgers take ~100 bytes per reading: kept only when they show a loss worth investigating."""
    if reconciled:
        for path in pubs.ledger_paths():
            path.unlink(missing_ok=True)


def reconcile_ledgers(run: Run, pubs: Publishers) -> tuple[Reconciliation, Reconciliation | None]:
    """The ledgers' readings against decoded_data and, when the mix has them, their events against
    device_events and component_states; the ledgers are dropped when both reconcile."""
    from simulator.reconcile import ledger_events, ledger_readings, wait_events_reconciled, wait_reconciled

    timeout = run.config.drain_timeout_s
    expected, messages = ledger_readings(pubs.ledger_paths())
    rec = wait_reconciled(expected, run.conn.timeseries_dsn, timeout)
    rec.detail = f"{messages:,} messages acknowledged by the broker; " + rec.detail
    events = ledger_events(pubs.ledger_paths())
    events_rec = wait_events_reconciled(events, run.conn.timeseries_dsn, timeout) if events else None
    drop_ledgers(pubs, rec.ok and (events_rec is None or events_rec.ok))
    return rec, events_rec


# ------------------------------------------------------------------------------------------------ bridge


def bridge_stage(run: Run) -> StageResult:
    cfg = run.config
    result = StageResult("bridge", "messages", cfg.duration_s)
    raw0 = kt.end_offsets(run.conn, topics.RAW)
    bridges = run.daemons("bridge", cfg.bridges)
    pubs = publishers(run)
    m = run.monitor()
    try:
        start_all(bridges)
        run.track_daemons(m, bridges)
        run.count_series(m, "bridge.out", bridges, "f2_messages_out_total", daemon="bridge")
        start_publishers(m, pubs)
        m.counter("generator.acked", pubs.total_acked)
        m.start()
        # The credit follows the sampled count, refreshed once per sample: `backlog` per sample interval is
        # the highest rate this stage can show, so it covers 100,000 msg/s, far above one bridge's.
        backlog = max(cfg.backlog_frames, int(100_000 * cfg.sample_interval_s))

        def tick() -> None:
            # Closed loop: the broker never queues more than `backlog` messages for the bridge.
            pubs.set_credit(int(m.latest("bridge.out")) + backlog)
            if pubs.failures():
                raise RuntimeError("a load generator failed (see the bench output)")

        tick()
        pubs.begin()
        while m.latest("bridge.out") <= 0:
            run.check_alive(bridges)
            tick()
            time.sleep(0.1)
        ws, we = run.measured_window(m, result, "bridge", bridges, tick)
        pubs.finish()
        if pubs.failures():
            raise RuntimeError("a load generator failed (see the bench output)")
        acked = pubs.total_acked()
        m.wait_for(
            lambda: m.sample().counters["bridge.out"] >= acked,
            cfg.drain_timeout_s,
            "the bridge to forward every acknowledged message",
        )
        rate = m.rate("bridge.out", ws, we)
        result.window = (ws, we)
        result.measures += [
            Measure("messages/s into Kafka", rate, "msg/s"),
            Measure.against(
                "messages/s per bridge process", rate / cfg.bridges, "msg/s", "bridge_msgs_per_s_per_process"
            ),
            Measure(
                "load generator: messages/s acknowledged by the broker",
                m.rate("generator.acked", ws, we),
                "msg/s",
                note=f"{len(pubs.procs)} publisher process(es), QoS 1, raw MQTT 3.1.1",
            ),
        ]
        result.processes = run.usages(m, ws, we, rate * (we - ws))
        gen_cpu = sum(p.cpu_s for p in result.processes if p.role == "generator")
        sent_in_window = m.value_at("generator.acked", we) - m.value_at("generator.acked", ws)
        result.notes.append(
            f"load generator used {gen_cpu / (we - ws):.2f} cores "
            f"({1e6 * gen_cpu / max(1.0, sent_in_window):.1f} CPU us per message) while publishing "
            f"{sent_in_window / (we - ws):,.0f} msg/s; the bridge is the bottleneck when it forwards fewer "
            "messages than the broker acknowledges (the closed loop keeps the broker's queue bounded)"
        )
        stop_all(bridges)
        raw1 = kt.end_offsets(run.conn, topics.RAW)
        in_kafka = sum(raw1[p] - raw0.get(p, 0) for p in raw1)
        forwarded = int(m.sample().counters["bridge.out"])
        result.reconciliations["acknowledged by broker = records in f2.raw"] = Reconciliation(
            acked,
            in_kafka,
            acked == in_kafka == forwarded,
            f"broker acknowledged {acked}, bridge confirmed {forwarded}, f2.raw grew by {in_kafka}",
        )
        result.timeseries = {
            "bridge msg/s": m.series("bridge.out"),
            "generator msg/s": m.series("generator.acked"),
        }
    finally:
        try:
            stop_all(bridges)
        finally:
            pubs.finish(10)
            m.stop()
    return result


# --------------------------------------------------------------------------------------------- processor


def prefill_raw(run: Run, frames: int) -> dict[int, tuple[array[int], array[int]]]:
    """`frames` raw records as the bridge writes them; returns partition -> (offsets, readings of each)."""
    eps = run.endpoints
    # partition -> (offsets, readings per record): arrays, as millions of tuples would cost hundreds of MB.
    delivered: dict[int, tuple[array[int], array[int]]] = defaultdict(lambda: (array("q"), array("b")))
    failures: list[str] = []

    def on_delivery_for(readings: int) -> Any:
        def cb(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))
            else:
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None:
                    offsets, counts = delivered[partition]
                    offsets.append(offset)
                    counts.append(readings)

        return cb

    callbacks = {n: on_delivery_for(n) for n in {ep.readings_per_frame for ep in eps}}
    stamper = Stamper()
    p = kt.producer(run.conn)
    base = time.time_ns() // 1000
    n_eps = len(eps)
    headers_at = 0.0
    received = kt.received_at()
    topic_bytes = [ep.topic.encode() for ep in eps]
    for k in range(frames):
        i = k % n_eps
        ep = eps[i]
        v = (k // n_eps) % len(ep.variants)
        if k % 5000 == 0 and time.monotonic() - headers_at > 0.5:
            received, headers_at = kt.received_at(), time.monotonic()
        value = payload(stamper.device_time(base + k), ep.variants[v][0])
        headers: kt.Headers = [(topics.H_MQTT_TOPIC, topic_bytes[i]), (topics.H_RECEIVED_AT, received)]
        while True:
            try:
                p.produce(
                    topics.RAW,
                    value=value,
                    key=ep.mac.encode(),
                    headers=headers,
                    on_delivery=callbacks[ep.readings_per_frame],
                )
                break
            except BufferError:
                p.poll(0.05)
        if k % 10000 == 0:
            p.poll(0)
    while p.flush(30):
        pass
    if failures:
        raise RuntimeError(f"pre-filling f2.raw failed: {failures[:3]}")
    return delivered


def processor_stage(run: Run) -> StageResult:
    cfg = run.config
    result = StageResult("processor", "frames", cfg.duration_s)
    conn = run.conn
    start = claim_group(run, topics.GROUP_PROCESSOR, topics.RAW)
    dec0 = kt.end_offsets(conn, topics.DECODED)
    dead0 = kt.end_offsets(conn, topics.DEADLETTER)
    frames = int(cfg.prefill_scale * TARGETS["processor_frames_per_s"].threshold * (cfg.warmup_s + cfg.duration_s))
    frames = max(frames, 1000)
    t = time.monotonic()
    delivered = prefill_raw(run, frames)
    run.say(f"processor: f2.raw pre-filled with {frames:,} frames in {time.monotonic() - t:.1f} s")
    procs = run.daemons("processor", cfg.processors)
    m = run.monitor()
    try:
        ws, end, rate = _measure_drain(
            run,
            m,
            result,
            procs,
            "processor",
            "processor.in",
            frames,
            "f2.raw",
            extra_series=("processor.out", "f2_messages_out_total"),
            series_metric="f2_messages_in_total",
        )
        result.window = (ws, end)
        result.measures += [
            Measure.against("frames/s (raw -> decoded, transactions on)", rate, "frames/s", "processor_frames_per_s"),
            Measure("readings/s written to f2.decoded", m.rate("processor.out", ws, end), "readings/s"),
        ]
        result.processes = run.usages(m, ws, end, rate * (end - ws))
        result.timeseries = {"processor frames/s": m.series("processor.in")}
        stop_all(procs)
        committed = kt.committed_offsets(conn, topics.GROUP_PROCESSOR, topics.RAW, start)
        consumed = sum(committed[p] - start[p] for p in start)
        expected = sum(
            n
            for p, (offsets, counts) in delivered.items()
            for off, n in zip(offsets, counts, strict=True)
            if off < committed.get(p, 0)
        )
        decoded = kt.count_records(conn, topics.DECODED, dec0)
        dead = kt.count_records(conn, topics.DEADLETTER, dead0)
        counted_in = int(m.sample().counters["processor.in"])
        result.reconciliations["readings of consumed frames = f2.decoded records"] = Reconciliation(
            expected,
            decoded,
            expected == decoded and dead == 0 and consumed > 0,
            f"{consumed} frames committed by the group ({counted_in} in the processor's counter at its last "
            f"scrape, before its final batch) carry "
            f"{expected} readings; f2.decoded received {decoded} (read_committed); {dead} dead letters",
        )
    finally:
        stop_all(procs)
        m.stop()
        # Leave nothing unconsumed behind for later stages or another processor.
        kt.skip_to_end(conn, topics.GROUP_PROCESSOR, topics.RAW)
    return result


def _measure_drain(
    run: Run,
    m: Monitor,
    result: StageResult,
    procs: list[Any],
    daemon: str,
    series: str,
    total: int,
    source: str,
    *,
    series_metric: str,
    extra_series: tuple[str, str] | None = None,
) -> tuple[float, float, float]:
    """Start `procs` on a pre-filled topic and measure one window of `series` (or until the topic ran dry).

    Returns (window start, window end, rate of `series` per second in it).
    """
    start_all(procs)
    run.track_daemons(m, procs)
    run.count_series(m, series, procs, series_metric, daemon=daemon)
    if extra_series is not None:
        run.count_series(m, extra_series[0], procs, extra_series[1], daemon=daemon)
    m.start()
    ws, we = run.wait_window(m, lambda: m.latest(series) > 0, procs, f"{daemon} progress")
    recs = run.profile_start(daemon, procs, run.config.duration_s)
    with contextlib.suppress(_Dry):
        run.sleep_until(m, we, procs, lambda: _stop_if_dry(m, series, total))
    end = m.sample().t
    run.profile_finish(result, recs)
    ws, end = _unless_dry(m, result, series, total, ws, end, source)
    return ws, end, m.rate(series, ws, end)


def _stop_if_dry(m: Monitor, series: str, total: int) -> None:
    if m.latest(series) >= total:
        raise _Dry


class _Dry(Exception):
    pass


def _unless_dry(
    m: Monitor, result: StageResult, series: str, total: int, start: float, end: float, topic: str
) -> tuple[float, float]:
    """The window to measure: shortened to when the pre-filled topic ran dry, if it did."""
    if m.latest(series) < total:
        return start, end
    dry = next((s.t for s in m.samples if s.counters.get(series, 0.0) >= total), end)
    if dry - start >= 1.0:
        result.notes.append(
            f"{topic} ran dry {dry - start:.1f} s into the window: measured until then; "
            "raise --prefill-scale for a full window"
        )
        return start, dry
    idle = [s.t for s in m.samples if s.counters.get(series, 0.0) <= 0]
    first = idle[-1] if idle else m.samples[0].t
    result.notes.append(
        f"{topic} ran dry during the warm-up: the rate spans the whole run, start-up included "
        "(a lower bound); raise --prefill-scale"
    )
    return first, dry


# -------------------------------------------------------------------------------------------------- sink


def prefill_decoded(run: Run, portfolio: Portfolio, rows: int) -> int:
    p = kt.producer(run.conn)
    frames = rows // 3
    chunk = 10_000
    for first in range(0, frames, chunk):
        records = portfolio.decoded_records(first, min(chunk, frames - first))
        kt.produce_all(p, topics.DECODED, ((k, v, None) for k, v in records))
        p.poll(0)
    while p.flush(30):
        pass
    return frames * 3


def sink_stage(run: Run) -> StageResult:
    cfg = run.config
    result = StageResult("sink", "rows", cfg.duration_s)
    conn = run.conn
    start = claim_group(run, topics.GROUP_SINK, topics.DECODED)
    portfolio = Portfolio.starting_soon(SINK_DEVICES)
    rows = int(cfg.prefill_scale * TARGETS["sink_rows_per_s"].threshold * (cfg.warmup_s + cfg.duration_s))
    t = time.monotonic()
    rows = prefill_decoded(run, portfolio, max(rows, 3000))
    run.say(f"sink: f2.decoded pre-filled with {rows:,} readings in {time.monotonic() - t:.1f} s")
    sinks = run.daemons("sink", cfg.sinks)
    m = run.monitor()
    try:
        ws, end, rate = _measure_drain(
            run, m, result, sinks, "sink", "sink.out", rows, "f2.decoded", series_metric="f2_messages_out_total"
        )
        result.window = (ws, end)
        result.measures += [
            Measure.against("rows/s into decoded_data", rate, "rows/s", "sink_rows_per_s"),
            Measure("frames/s equivalent", rate / 3, "frames/s", note="3 readings per frame in the portfolio"),
        ]
        result.processes = run.usages(m, ws, end, rate * (end - ws))
        result.timeseries = {"sink rows/s": m.series("sink.out")}
        stop_all(sinks)
        committed = kt.committed_offsets(conn, topics.GROUP_SINK, topics.DECODED, start)
        consumed = sum(committed[p] - start[p] for p in start)
        first, last = portfolio.device_range()
        with psycopg.connect(conn.timeseries_dsn) as db:
            row = db.execute(
                "SELECT count(*) FROM decoded_data WHERE device_id BETWEEN %s AND %s AND "
                '"timestamp" >= to_timestamp(%s::double precision / 1e6)',
                (first, last, portfolio.base_us),
            ).fetchone()
        stored = int(row[0]) if row else 0
        counted = int(m.sample().counters["sink.out"])
        result.reconciliations["records consumed = rows in decoded_data"] = Reconciliation(
            consumed,
            stored,
            consumed == stored and consumed > 0,
            f"the group committed {consumed} records; decoded_data holds {stored} of the portfolio's rows "
            f"({counted} in the sink's counter at its last scrape, before its final batch)",
        )
    finally:
        stop_all(sinks)
        m.stop()
        kt.skip_to_end(conn, topics.GROUP_SINK, topics.DECODED)
    return result
