"""Nothing lost, nothing duplicated: the rows in decoded_data equal the readings of every message the broker
acknowledged (the simulator's ledger), with and without faults injected mid-stream."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from f2_platform.stack.manager import Stack
from streaming.settings import ConnectionSettings
from tests.realtime import simulate, wait_reconciled

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_fleet(
    env: dict[str, str],
    ledger: Path,
    *,
    controllers: int,
    interval: float,
    count: int,
    fault=None,
    fault_after: float = 3.0,
) -> None:
    proc = simulate(
        env,
        "--controllers",
        str(controllers),
        "--interval",
        str(interval),
        "--count",
        str(count),
        "--ledger",
        str(ledger),
        "--seed",
        str(int(time.time())),
    )
    try:
        if fault is not None:
            time.sleep(fault_after)
            assert proc.poll() is None, "the simulator finished before the fault: lower its rate"
            fault()
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()[-2000:]
        assert f"{count} messages acknowledged".encode() in out, out.decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def assert_reconciled(ledger: Path, conn: ConnectionSettings, timeout: float = 180) -> None:
    report = wait_reconciled(ledger, conn.timeseries_dsn, timeout)
    assert report.exact, (
        f"expected {report.expected} readings, stored {report.stored}; "
        f"missing {report.missing[:5]}, unexpected {report.unexpected[:5]}, "
        f"wrong {report.wrong_value[:5]}"
    )


def test_fleet_of_20000_messages_reconciles(migrated, stack_env, pipeline, tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    run_fleet(stack_env, ledger, controllers=20, interval=0.02, count=20000)
    assert_reconciled(ledger, migrated)
    assert all(pipeline.alive().values())


@pytest.mark.parametrize("daemon", ["bridge-0", "processor-0", "sink-0"])
def test_sigkill_and_restart_loses_nothing(daemon, migrated, stack_env, pipeline, tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"

    def fault() -> None:
        d = pipeline.get(daemon)
        d.signal(signal.SIGKILL)
        d.proc.wait(10)
        time.sleep(1.0)
        pipeline.restart(daemon)

    run_fleet(stack_env, ledger, controllers=10, interval=0.05, count=4000, fault=fault)
    assert_reconciled(ledger, migrated)


# (service of the stack, seconds it stays down, simulator interval, messages, seconds allowed to reconcile)
OUTAGES = {
    "kafka-restart": ("kafka", 2.0, 0.05, 4000, 240),
    "postgres-down-20s": ("postgres", 20.0, 0.1, 3000, 240),
    "redis-down": ("redis", 8.0, 0.05, 4000, 180),
}


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_service_outage_loses_nothing(outage, migrated, stack_env, stack: Stack, pipeline, tmp_path) -> None:
    name, down_s, interval, count, timeout = OUTAGES[outage]
    service = getattr(stack, name)
    ledger = tmp_path / "ledger.jsonl"

    def fault() -> None:
        service.stop()
        time.sleep(down_s)
        service.start()

    run_fleet(stack_env, ledger, controllers=10, interval=interval, count=count, fault=fault)
    assert_reconciled(ledger, migrated, timeout=timeout)
    assert all(pipeline.alive().values()), pipeline.alive()
