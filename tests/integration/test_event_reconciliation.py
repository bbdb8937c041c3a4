"""Nothing lost, nothing duplicated, for events too (issue 17): a simulated fleet of sensors, doors, exit
buttons, motion sensors, strikes, sirens and readers, 20,000 messages through the real pipeline while each
daemon (processor, sink, bridge) is SIGKILLed and Kafka, PostgreSQL and Redis are each stopped and started
again: the faults the readings survive (test_reconciliation.py). Every event the broker acknowledged (the
simulator's ledger) is in device_events exactly once, with the previous state and duration the simulator
computed from what it sent, and component_states holds each component's last state since the start of its
run; the readings reconcile too."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest

from f2_platform.stack.manager import Stack
from simulator.reconcile import ledger_events, reconcile_events, wait_events_reconciled
from tests.integration.test_reconciliation import assert_reconciled
from tests.pipeline import Pipeline
from tests.realtime import simulate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 20_000


def sigkill(pipeline: Pipeline, daemon: str, down_s: float) -> Callable[[], None]:
    def fault() -> None:
        d = pipeline.get(daemon)
        d.signal(signal.SIGKILL)
        d.proc.wait(10)
        time.sleep(down_s)
        pipeline.restart(daemon)

    return fault


def outage(stack: Stack, service: str, down_s: float) -> Callable[[], None]:
    def fault() -> None:
        s = getattr(stack, service)
        s.stop()
        time.sleep(down_s)
        s.start()

    return fault


def test_a_fleet_with_events_survives_sigkills_and_outages_exactly(
    migrated, stack_env, stack: Stack, pipeline: Pipeline, tmp_path
) -> None:
    ledger = tmp_path / "ledger.jsonl"

    # (seconds after the simulator started, fault): each while it still publishes (about 80 s in all).
    faults = [
        (3.0, sigkill(pipeline, "processor-0", 1.0)),
        (7.0, sigkill(pipeline, "sink-0", 3.0)),  # the sink down for a while: a backlog of events to store
        (12.0, outage(stack, "kafka", 2.0)),
        (18.0, sigkill(pipeline, "bridge-0", 1.0)),  # unacknowledged messages come again: duplicates in f2.raw
        (24.0, outage(stack, "postgres", 10.0)),  # the sink and the registry's readers wait for it
        (40.0, outage(stack, "redis", 5.0)),  # the processor's topology cache
    ]
    started = time.monotonic()
    proc = simulate(
        stack_env, "--controllers", "20", "--interval", "0.3", "--count", str(MESSAGES),
        "--ledger", str(ledger), "--seed", str(int(time.time())), "--event-activity", "0.6",
    )  # fmt: skip
    try:
        for at, fault in faults:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            assert proc.poll() is None, "the simulator finished before the fault: lower its rate"
            fault()
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()[-2000:]
        assert f"{MESSAGES} messages acknowledged".encode() in out, out.decode()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()

    events = ledger_events([ledger])
    kinds = Counter((e["kind"], str(e["component"]).rstrip("0123456789")) for e in events)
    for kind in [
        ("state", "door-sensor-"),
        ("state", "exit-button-"),
        ("state", "motion-sensor-"),
        ("state", "strike-"),
        ("state", "siren-"),
        ("access", "reader-"),
        ("indicator", "reader-"),
    ]:
        assert kinds[kind] > 0, f"the fleet sent no {kind}: {kinds}"
    # The exit buttons are not in the registry: their events are kept without a device id.
    assert {e["device_id"] for e in events if str(e["component"]).startswith("exit-button-")} == {None}
    report = wait_events_reconciled(events, migrated.timeseries_dsn, 300)
    assert report.ok, f"{report.expected} events in the ledger, {report.observed} stored: {report.detail}"
    assert_reconciled(ledger, migrated, timeout=240)
    assert all(pipeline.alive().values()), pipeline.alive()

    # The comparison sees a duration off by a millisecond, and a door's `since` off by one: it can fail.
    door = next(e for e in reversed(events) if str(e["component"]).startswith("door-sensor-"))
    key = (door["time"], door["controller_mac"], door["connector"], door["component"])
    shift_duration = (
        "UPDATE device_events SET previous_duration_s = previous_duration_s + %s "
        'WHERE "time" = %s AND controller_mac = %s AND connector = %s AND component = %s'
    )
    shift_since = (
        "UPDATE component_states SET since = since + %s * interval '1 microsecond' "
        "WHERE controller_mac = %s AND connector = %s AND component = %s"
    )
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as owner:
        owner.execute(shift_duration, (0.001, *key))
        wrong = reconcile_events(events, migrated.timeseries_dsn)
        owner.execute(shift_duration, (-0.001, *key))
        owner.execute(shift_since, (-1, *key[1:]))
        moved = reconcile_events(events, migrated.timeseries_dsn)
        owner.execute(shift_since, (1, *key[1:]))
    assert not wrong.ok and "0 missing, 0 unexpected, 1 with other values" in wrong.detail, wrong.detail
    assert not moved.ok and "0 missing, 0 unexpected, 0 with other values" in moved.detail, moved.detail
    assert reconcile_events(events, migrated.timeseries_dsn).ok
