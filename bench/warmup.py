"""The broker's warm-up before anything is measured, and its JIT compiler's CPU during each stage.

A freshly started Kafka broker spends its first minutes under load compiling its hot paths: in a cold run's
processor stage HotSpot's compiler threads used 0.3 of the machine's two cores, CPU the daemons then did not
get. Production brokers run for months. So before the first stage that uses Kafka, the whole pipeline runs
at the portfolio's rate until the compiler threads have stayed under `QUIET_CORES` for `QUIET_S` (at least
`MIN_S`, at most `BenchConfig.broker_warmup_max_s`), and each stage reports what they used in its window.
"""

from __future__ import annotations

import time

from bench.common import Run
from bench.config import PORTFOLIO_FRAMES_PER_S
from bench.monitor import kafka_jit_cpu_s
from bench.stages import claim_pipeline, publishers, skip_pipeline_to_end
from f2_platform.stack.daemons import start_all, stop_all

MIN_S = 30.0
QUIET_S = 15.0
QUIET_CORES = 0.05
CHECK_EVERY_S = 5.0


def warm_up_broker(run: Run) -> str:
    """Run the pipeline until the broker's JIT compiler is quiet; a line for the results' notes."""
    cfg = run.config
    pids = run.bs.kafka_pids()
    if not pids or kafka_jit_cpu_s(pids) is None:
        return "broker warm-up skipped: the Kafka broker's JIT compiler threads cannot be read on this machine"
    claim_pipeline(run)
    daemons = (
        run.daemons("bridge", cfg.bridges) + run.daemons("processor", cfg.processors) + run.daemons("sink", cfg.sinks)
    )
    pubs = publishers(run, rate_per_s=PORTFOLIO_FRAMES_PER_S)
    started = time.monotonic()
    quiet_for = 0.0
    last = kafka_jit_cpu_s(pids) or 0.0
    first = last
    cores = 0.0
    try:
        start_all(daemons)
        pubs.start()
        pubs.begin()
        while True:
            run.sleep(CHECK_EVERY_S, daemons)
            now = kafka_jit_cpu_s(pids) or last
            cores = (now - last) / CHECK_EVERY_S
            last = now
            quiet_for = quiet_for + CHECK_EVERY_S if cores < QUIET_CORES else 0.0
            elapsed = time.monotonic() - started
            if elapsed >= cfg.broker_warmup_max_s or (quiet_for >= QUIET_S and elapsed >= MIN_S):
                break
    finally:
        try:
            pubs.finish(30)
        finally:
            stop_all(daemons)
    skip_pipeline_to_end(run)
    state = "quiet" if quiet_for >= QUIET_S else "still compiling"
    return (
        f"broker warm-up: the pipeline ran {time.monotonic() - started:.0f} s at {PORTFOLIO_FRAMES_PER_S:,.0f} "
        f"frames/s before the first measured stage; Kafka's JIT compiler used {last - first:.0f} CPU s, "
        f"{cores:.2f} cores at the end ({state})"
    )
