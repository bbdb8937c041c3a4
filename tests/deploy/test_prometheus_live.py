"""A real Prometheus scrapes the three daemons (running as processes against the real stack) and finds the
metrics deploy/README.md documents, with readings flowing through the pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import F2_JOBS
from tests.deploy.prometheus_runner import Prometheus

pytestmark = pytest.mark.integration

F2 = str(Path(sys.executable).parent / "f2")

# (metric, extra label matchers) each daemon exports once readings have gone through it.
DOCUMENTED = {
    "f2-bridge": [
        ("f2_up", ""),
        ("f2_messages_in_total", ""),
        ("f2_messages_out_total", ""),
        ("f2_connected", 'system="mqtt"'),
    ],
    "f2-processor": [
        ("f2_up", ""),
        ("f2_messages_in_total", ""),
        ("f2_messages_out_total", ""),
        ("f2_batch_size_bucket", ""),
        ("f2_batch_duration_seconds_bucket", ""),
        ("f2_cache_hits_total", ""),
        ("f2_cache_misses_total", ""),
    ],
    "f2-sink": [
        ("f2_up", ""),
        ("f2_messages_in_total", ""),
        ("f2_messages_out_total", ""),
        ("f2_batch_size_bucket", ""),
        ("f2_batch_duration_seconds_bucket", ""),
        ("f2_end_to_end_latency_seconds_bucket", ""),
        ("f2_consumer_lag", ""),
        ("f2_connected", 'system="database"'),
    ],
}


def selector(job: str, metric: str, extra: str) -> str:
    daemon = job.removeprefix("f2-")
    return f'{metric}{{job="{job}", daemon="{daemon}"{", " + extra if extra else ""}}}'


def test_every_daemon_target_is_up(prometheus: Prometheus) -> None:
    health = prometheus.wait(
        lambda: (h := prometheus.target_health()) and all(h.get(job) == ["up"] for job in F2_JOBS) and h,
        60,
        "every daemon's target up",
    )
    assert set(health) == set(F2_JOBS)
    for job in F2_JOBS:
        assert prometheus.query(f'f2_up{{job="{job}"}} == 1'), f"{job}: f2_up is not 1"


def test_documented_metrics_present_with_traffic(prometheus: Prometheus, pipeline, stack_env) -> None:
    from tests.pipeline import env_without_proxy

    # Real traffic: simulated controllers publish; the readings go bridge -> processor -> sink.
    result = subprocess.run(
        [F2, "simulate", "--count", "40", "--interval", "0.05", "--duration", "60"],
        env=env_without_proxy(stack_env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]

    def missing() -> list[str]:
        return [
            selector(job, metric, extra)
            for job, metrics in DOCUMENTED.items()
            for metric, extra in metrics
            if not prometheus.query(selector(job, metric, extra))
        ]

    try:
        prometheus.wait(lambda: not missing(), 90, "every documented metric")
    except TimeoutError:
        pytest.fail(f"metrics missing from Prometheus: {missing()}")
    prometheus.wait(
        lambda: prometheus.query('f2_messages_out_total{job="f2-sink"} > 0'),
        90,
        "readings stored by the sink",
    )
    assert prometheus.query('f2_connected{job="f2-bridge", system="mqtt"} == 1')
    assert prometheus.query('f2_connected{job="f2-sink", system="database"} == 1')
    # The recording rules evaluate over the scraped series.
    rates = prometheus.wait(lambda: prometheus.query("f2:messages_in:rate1m"), 30, "f2:messages_in:rate1m")
    assert {r["metric"]["daemon"] for r in rates} == {"bridge", "processor", "sink"}
