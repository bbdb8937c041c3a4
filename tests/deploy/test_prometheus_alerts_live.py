"""Stopping the sink makes a real Prometheus fire the target-down alerts; restarting it resolves them.
In its own module: the `pipeline` fixture is module-scoped, and this module stops one of its daemons."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import F2_JOBS
from tests.deploy.prometheus_runner import Prometheus

pytestmark = pytest.mark.integration


def test_stopping_the_sink_fires_its_alerts(prometheus: Prometheus, pipeline) -> None:
    prometheus.wait(
        lambda: all(prometheus.target_health().get(job) == ["up"] for job in F2_JOBS),
        60,
        "every daemon's target up",
    )
    assert not prometheus.firing("F2DaemonDown")

    sink = pipeline.get("sink-0")
    try:
        assert sink.stop() == 0, "the sink drains and exits cleanly on SIGTERM"
        down = prometheus.wait(
            lambda: prometheus.firing("F2DaemonDown", job="f2-sink"), 60, "F2DaemonDown firing for the sink"
        )
        assert down[0]["labels"]["severity"] == "critical"
        assert down[0]["labels"]["instance"] == f"127.0.0.1:{sink.metrics_port}"
        prometheus.wait(lambda: prometheus.firing("F2StageDown", job="f2-sink"), 30, "F2StageDown for the sink")
        # Only the sink is down.
        assert {a["labels"]["job"] for a in prometheus.firing("F2DaemonDown")} == {"f2-sink"}
    finally:
        pipeline.restart("sink-0")

    prometheus.wait(lambda: prometheus.target_health().get("f2-sink") == ["up"], 60, "the sink's target up again")
    prometheus.wait(lambda: not prometheus.firing("F2DaemonDown", job="f2-sink"), 60, "F2DaemonDown resolved")
