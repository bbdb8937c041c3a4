"""The processor's crash-only recovery, with real failures: a worker hung inside a librdkafka call is restarted by
the watchdog and resumes from the committed offsets; an abort that keeps failing ends in the documented restart.

Kafka is frozen with SIGSTOP (the process stays, its connections stay open, nothing answers): a transactional
call of the processor then waits inside librdkafka. With F2_PROCESSOR_WATCHDOG_SCALE the watchdog's deadlines
are shorter than librdkafka's own timeouts, so the call is still inside librdkafka when its deadline passes,
as a call hung by a librdkafka bug is. Each run is reconciled exactly against the simulator's ledger, and the
readings in f2.decoded (read_committed) are counted: none twice, so the new worker went on from the committed
offsets and the hung worker's transaction was aborted, not committed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from f2_platform.stack.manager import Stack
from simulator.reconcile import ledger_readings
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.kafka_cluster import decoded_readings, end_offsets, read_committed, twice
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import simulate, wait_reconciled

pytestmark = [pytest.mark.integration]


def wait_for_line(path: Path, pattern: str, timeout: float, after: int = 0) -> float:
    """Seconds until `pattern` (a regex) appears in the log past byte `after`; AssertionError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if re.search(pattern, path.read_text(errors="replace")[after:]):
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in {path} within {timeout:.0f} s:\n{path.read_text()[-3000:]}")


def run_with_fault(
    stack: Stack,
    migrated: ConnectionSettings,
    stack_env: dict[str, str],
    tmp_path: Path,
    processor_settings: dict[str, str],
    fault: Callable[[Path], dict[str, object]],
) -> dict[str, object]:
    env = env_without_proxy(stack_env) | processor_settings
    pipeline = Pipeline(env, tmp_path / "daemons")
    start = {t: end_offsets(migrated, t) for t in (topics.RAW, topics.DECODED)}
    ledger = tmp_path / f"ledger-{uuid.uuid4().hex[:6]}.jsonl"
    pipeline.start()
    try:
        proc = simulate(
            {**env, "F2_SIMULATOR_TRANSPORT": "internal"},
            *("--controllers", "10", "--interval", "0.1", "--duration", "30"),
            *("--ledger", str(ledger), "--seed", str(int(time.time()))),
        )
        try:
            time.sleep(6)
            numbers = fault(pipeline.get("processor-0").log_path)
            out, _ = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
        report = wait_reconciled(ledger, migrated.timeseries_dsn, 240)
        assert report.exact, (report.expected, report.stored, report.missing[:3], report.unexpected[:3])
        assert all(pipeline.alive().values()), pipeline.alive()
    finally:
        pipeline.stop()
    expected, messages = ledger_readings([ledger])
    decoded = decoded_readings(
        read_committed(migrated, topics.DECODED, start[topics.DECODED]), {k[1] for k in expected}
    )
    raw = read_committed(migrated, topics.RAW, start[topics.RAW])
    numbers |= {
        "messages": messages,
        "readings": len(expected),
        "readings in f2.decoded more than once": len(twice(decoded)),
        "messages in f2.raw more than once": len(
            twice(Counter((r.headers.get(topics.H_MQTT_TOPIC, ""), r.value or b"") for r in raw))
        ),
    }
    print(f"\n{json.dumps(numbers)}")
    assert not twice(decoded), f"readings committed twice to f2.decoded: {twice(decoded)[:3]}"
    assert set(decoded) == set(expected)
    return numbers


def freeze(stack: Stack) -> int:
    """SIGSTOP Kafka's process group (the JVM and anything it started); returns the group's id."""
    pid = stack.kafka.nodes[0].pid()
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)
    return pid


@pytest.mark.slow
def test_a_worker_hung_in_librdkafka_is_restarted_by_the_watchdog_and_resumes_from_committed_offsets(
    stack: Stack, migrated: ConnectionSettings, stack_env: dict[str, str], tmp_path: Path
) -> None:
    def hang(log: Path) -> dict[str, object]:
        mark = log.stat().st_size
        group = freeze(stack)
        try:
            hung_after = wait_for_line(log, r"is hung past its deadline", 60, mark)
            wait_for_line(log, r"worker streaming\.processor hung and exited; restart 1", 30, mark)
        finally:
            os.killpg(group, signal.SIGCONT)
        text = log.read_text(errors="replace")[mark:]
        call = re.search(r"(\w+) is hung past its deadline", text)
        return {
            "hung call": call.group(1) if call else None,
            "seconds from SIGSTOP to the watchdog": round(hung_after, 1),
        }

    # Deadlines x 0.2: init_transactions 24 s, send_offsets_to_transaction 12 s, commit 18 s, abort 12 s, each
    # shorter than the call's own librdkafka timeout (60, 30, 60, 30 s).
    numbers = run_with_fault(stack, migrated, stack_env, tmp_path, {"F2_PROCESSOR_WATCHDOG_SCALE": "0.2"}, hang)
    assert numbers["hung call"] in ("send_offsets_to_transaction", "commit_transaction", "abort_transaction")


# A processor whose transaction is open when Kafka stops answering, driven as its run loop drives it: the batch's
# abort fails, and before each later batch the abort is resumed (Processor._abort, Processor._resume_abort).
_ABORTING_PROCESSOR = """
import sys
from contextlib import ExitStack
from confluent_kafka import KafkaException
from streaming.kafka import topics
from streaming.processor import Processor
from streaming.runtime.runloop import configure_logging
from streaming.settings import ConnectionSettings, ProcessorSettings

configure_logging("processor")
processor = Processor(ConnectionSettings(), ProcessorSettings())
with ExitStack() as stack:
    processor.start(stack)
    processor.producer.begin_transaction()
    processor.producer.produce(topics.LATEST, key=sys.argv[1].encode(), value=b"{}")
    processor.producer.flush(10)
    print("OPEN", flush=True)
    sys.stdin.readline()
    processor._abort()
    while True:
        try:
            processor._resume_abort()
        except KafkaException as exc:
            print("RESUME FAILED", exc, flush=True)
        else:
            print("ABORTED", flush=True)
            sys.exit(0)
"""


@pytest.mark.slow
def test_an_abort_that_keeps_failing_ends_in_the_documented_restart(
    stack: Stack, migrated: ConnectionSettings, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The abort of an open transaction fails for real (Kafka frozen) and keeps failing when resumed: past
    F2_PROCESSOR_ABORT_GIVE_UP_S the worker exits with EXIT_HUNG for its supervisor to restart it, and the fresh
    producer's init_transactions (as the restarted worker's) fences it and aborts the transaction: nothing of it
    is ever read."""
    import subprocess
    import sys

    from confluent_kafka import Producer

    from streaming.runtime.supervisor import EXIT_HUNG

    instance = f"test-give-up-{uuid.uuid4().hex[:6]}"
    key = f"give-up-{instance}"
    env = env_without_proxy(stack_env) | {
        "F2_PROCESSOR_INSTANCE_ID": instance,
        "F2_PROCESSOR_ABORT_GIVE_UP_S": "5",
    }
    latest_start = end_offsets(migrated, topics.LATEST)
    log = tmp_path / "processor.log"
    with open(log, "wb") as err:
        worker = subprocess.Popen(
            [sys.executable, "-c", _ABORTING_PROCESSOR, key],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    group = None
    try:
        assert worker.stdout is not None and worker.stdin is not None
        assert worker.stdout.readline().strip() == b"OPEN", log.read_text()[-3000:]
        group = freeze(stack)
        frozen = time.monotonic()
        worker.stdin.write(b"go\n")
        worker.stdin.flush()
        code = worker.wait(timeout=180)
        numbers: dict[str, object] = {
            "seconds Kafka was frozen until the worker exited": round(time.monotonic() - frozen)
        }
    finally:
        if group is not None:
            os.killpg(group, signal.SIGCONT)
        if worker.poll() is None:
            worker.kill()
    out = worker.stdout.read().decode(errors="replace") if worker.stdout else ""
    text = log.read_text(errors="replace")
    assert code == EXIT_HUNG, f"exit {code}; {out}\n{text[-3000:]}"
    # The batch's abort failed (logged, left pending); the next resume failed too, past the give-up time, so
    # the worker exited inside it (it never returned to print RESUME FAILED, nor ABORTED).
    assert "ABORTED" not in out and "RESUME FAILED" not in out, out
    assert re.search(r"aborting the transaction failed .*_TIMED_OUT", text), text[-3000:]
    assert re.search(r"aborting the transaction has failed for \d+ s", text), text[-3000:]
    assert "is hung past its deadline" not in text, "the watchdog, not the give-up path, ended the worker"

    # The restarted worker's first step: a producer with the same transactional id fences the old one.
    fresh = Producer({**migrated.kafka_config(), "transactional.id": f"f2-processor-{instance}"})
    started = time.monotonic()
    fresh.init_transactions(60)
    numbers["seconds for the fresh producer's init_transactions"] = round(time.monotonic() - started, 1)
    latest = read_committed(migrated, topics.LATEST, latest_start)
    assert not [r for r in latest if r.key == key.encode()], "the abandoned transaction's record was committed"
    print(f"\n{json.dumps(numbers)}")
