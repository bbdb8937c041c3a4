"""A database or Kafka out of reach is one line saying so and what to check, exit status 1, no traceback
(f2_platform/cli/main.py). The commands run as an operator runs them, against ports nothing listens on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from f2_platform.stack.ports import free_port

F2 = str(Path(sys.executable).parent / "f2")


def _f2(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    closed = free_port()
    env = {
        **os.environ,
        "F2_STATE_DIR": str(tmp_path / "no-stack"),  # no local stack: the settings below are all there is
        "F2_TIMESERIES_DSN": f"postgresql://f2:f2@127.0.0.1:{closed}/f2?connect_timeout=3",
        "F2_REGISTRY_DSN": f"postgresql://f2:f2@127.0.0.1:{closed}/f2?connect_timeout=3",
        "F2_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
    }
    return subprocess.run([F2, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_database_out_of_reach_is_one_line_with_what_to_check(tmp_path: Path) -> None:
    done = _f2(tmp_path, "trace", "--controller", "aabbccddee01", "--component", "door-sensor-1", "--at", "2026-01-01")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: cannot reach the database: ") and "Connection refused" in line
    assert "f2 stack status" in line and "F2_* settings" in line


def test_kafka_out_of_reach_is_one_line_with_what_to_check(tmp_path: Path) -> None:
    # f2 deadletters list reads f2.deadletter first; librdkafka gives up after its 30 s metadata timeout.
    done = _f2(tmp_path, "deadletters", "list", "--since", "1h")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: cannot reach Kafka: ") and "f2 stack status" in line
