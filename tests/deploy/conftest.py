"""Fixtures of the deployment tests: a real Prometheus scraping the `pipeline` fixture's daemons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.prometheus_runner import Prometheus
from tests.deploy.support import PROMETHEUS

F2_JOBS = ("f2-bridge", "f2-processor", "f2-sink")


@pytest.fixture(scope="module")
def prometheus(pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping the module's pipeline (bridge-0, processor-0, sink-0) every second, with the F2
    rules loaded (alerts' `for:` shortened to 1 s). Stopped, and its data removed, at teardown."""
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: install Debian's prometheus package (make provision)")
    targets = {
        f"f2-{kind}": [f"127.0.0.1:{pipeline.get(f'{kind}-0').metrics_port}"]
        for kind in ("bridge", "processor", "sink")
    }
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), targets)
    try:
        server.start()
        yield server
    finally:
        server.stop()
