"""Backpressure: with the sink stopped for 60 s under load, no daemon's memory grows without bound and,
once the sink is back, nothing is lost."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.integration.test_reconciliation import assert_reconciled
from tests.realtime import simulate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MB = 1024 * 1024


def _rss(pid: int) -> int:
    """Resident memory of a supervised daemon: the supervisor and its worker together."""
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def _signal_tree(pid: int, sig: int) -> None:
    proc = psutil.Process(pid)
    for p in [proc, *proc.children(recursive=True)]:
        p.send_signal(sig)


def test_sink_stopped_for_60_seconds_under_load(migrated, stack_env, pipeline, tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    watched = {name: pipeline.get(name).proc.pid for name in ("bridge-0", "processor-0")}
    sink = pipeline.get("sink-0")
    # About 1,000 messages/s for 75 s: the sink is away for 60 s of it.
    sim = simulate(stack_env, "--controllers", "10", "--interval", "0.05", "--duration", "75", "--ledger", str(ledger))
    samples: dict[str, list[int]] = {name: [] for name in watched}
    try:
        time.sleep(5)
        _signal_tree(sink.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < 60:
            for name, pid in watched.items():
                samples[name].append(_rss(pid))
            time.sleep(2)
        _signal_tree(sink.proc.pid, signal.SIGCONT)
        out, _ = sim.communicate(timeout=300)
        assert sim.returncode == 0, out.decode()[-2000:]
    finally:
        _signal_tree(sink.proc.pid, signal.SIGCONT)
        if sim.poll() is None:
            sim.kill()
    for name, values in samples.items():
        first, last = values[: len(values) // 3], values[-len(values) // 3 :]
        # Bounded: the last third of the outage holds no more than the first third plus a small margin,
        # and every daemon stays under the 300 MB budget.
        assert max(last) <= max(first) + 40 * MB, (name, [v // MB for v in values])
        assert max(values) <= 300 * MB, (name, max(values) // MB)
    assert_reconciled(ledger, migrated, timeout=300)
    assert all(pipeline.alive().values()), pipeline.alive()
