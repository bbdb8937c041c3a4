"""`make demo` on a stack of its own (temporary state folder, free ports): `f2 demo up --history` sends past
hours of the sample fleet through the real pipeline, the ledger reconciles with decoded_data, and the demo's
Dagster instance holds the hours' aggregate partitions, their check results and the day's report; the commands
the demo prints run as printed in a fresh shell without a virtual environment; a second `f2 demo up` loads
nothing again.

The history here is the last three hours of yesterday (UTC), so that the day is a complete partition whatever
the time the test runs: `make demo`'s 24 hours always include one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from f2_platform.stack.hermetic import hermetic_stack_settings, make_state_dir
from f2_platform.stack.ports import free_port
from simulator.reconcile import ledger_events, reconcile_events
from tests.realtime import F2, ledger_readings, reconcile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HISTORY = timedelta(hours=3)
INTERVAL_S = 30  # the history's frame interval (f2_platform/demo/history.py)
SENSORS = 5  # frame sensors of the sample fleet (docs/domain.md): three ENV-S1, a PM-100, a PS-1
# A new shell on this machine: the system's PATH, no virtual environment.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROMPT = "  $ "


@dataclass(frozen=True)
class Demo:
    state_dir: Path
    env: dict[str, str]
    output: str
    start: datetime
    end: datetime


def _demo_env(state_dir: Path) -> dict[str, str]:
    s = hermetic_stack_settings(state_dir)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("F2_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    env.update(
        {
            "F2_STATE_DIR": str(state_dir),
            "F2_STACK_POSTGRES_PORT": str(s.postgres_port),
            "F2_STACK_REDIS_PORT": str(s.redis_port),
            "F2_STACK_MQTT_PORT": str(s.mqtt_port),
            "F2_STACK_MQTT_TLS_PORT": str(s.mqtt_tls_port),
            "F2_STACK_KAFKA_PORT": str(s.kafka_port),
            "F2_STACK_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "F2_STACK_ENROLL_PORT": str(s.enroll_port),
            "F2_STACK_KAFKA_PARTITIONS": "2",
            "F2_BRIDGE_METRICS_PORT": str(free_port()),
            "F2_PROCESSOR_METRICS_PORT": str(free_port()),
            "F2_SINK_METRICS_PORT": str(free_port()),
            "F2_DAGSTER_UI_PORT": str(free_port()),
            # A bridge session and a transactional id of their own on this stack.
            "F2_BRIDGE_CLIENT_ID": "f2-bridge-demo-test",
            "F2_PROCESSOR_INSTANCE_ID": "demo-test",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def demo_up(env: dict[str, str], end: datetime) -> subprocess.CompletedProcess[str]:
    argv = [F2, "demo", "up", "--without-dagster", "--history", "3h", "--history-end", end.isoformat()]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    state_dir = make_state_dir("f2-test-demo-")
    env = _demo_env(state_dir)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        result = demo_up(env, end)
        assert result.returncode == 0, f"f2 demo up failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        yield Demo(state_dir, env, result.stdout, end - HISTORY, end)
    finally:
        subprocess.run([F2, "demo", "down"], env=env, capture_output=True, timeout=300, check=False)
        shutil.rmtree(state_dir, ignore_errors=True)


def _record(demo: Demo) -> dict[str, object]:
    return json.loads((demo.state_dir / "demo" / "history.json").read_text())


def _instance(demo: Demo) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(demo.state_dir / "dagster"))


def test_history_goes_through_the_pipeline_and_reconciles(demo: Demo) -> None:
    record = _record(demo)
    assert (record["start"], record["end"]) == (demo.start.isoformat(), demo.end.isoformat())
    ledger = Path(str(record["ledger"]))
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    frames = [m for m in lines if "/sensor-mode/" in m["topic"]]  # readers publish on tele/ too
    # Every sensor once per interval over the window, each stamped inside it.
    assert len(frames) == SENSORS * int(HISTORY.total_seconds()) // INTERVAL_S
    stamps = {datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for m in lines for r in m["readings"]}
    assert demo.start <= min(stamps) and max(stamps) < demo.end
    assert record["messages"] == len(lines) and record["readings"] == len(ledger_readings(ledger))
    # decoded_data holds exactly the ledger's readings (this test's own reconciliation, not the demo's).
    dsn = _stack_env(demo)["F2_TIMESERIES_DSN"]
    result = reconcile(ledger, dsn)
    assert result.exact, result
    # The doors, buttons, motion sensors, strikes, sirens and readers of the sample fleet: their events are in
    # device_events and component_states exactly as the ledger says.
    events = ledger_events([ledger])
    assert {e["kind"] for e in events} >= {"state", "access"}
    assert record["events"] == len(events)
    events_result = reconcile_events(events, dsn)
    assert events_result.ok, events_result.detail


def test_the_demo_instance_holds_the_hours_checks_and_report(demo: Demo) -> None:
    day = demo.start.date().isoformat()
    hours = [(demo.start + timedelta(hours=h)).strftime("%Y-%m-%d-%H:%M") for h in range(3)]
    with _instance(demo) as instance:
        assert set(instance.get_materialized_partitions(dg.AssetKey("readings_hourly"))) == set(hours)
        assert set(instance.get_materialized_partitions(dg.AssetKey("readings_daily"))) == {day}
        assert set(instance.get_materialized_partitions(dg.AssetKey("data_quality_report"))) == {day}
        assert set(instance.get_materialized_partitions(dg.AssetKey("events_hourly"))) == set(hours)
        assert set(instance.get_materialized_partitions(dg.AssetKey("events_daily"))) == {day}

        def evaluations(asset: str, check: str) -> dict[str, dg.AssetCheckEvaluation]:
            history = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey(asset), check), limit=50
            )
            out = {}
            for execution in history:
                assert execution.event is not None and execution.event.dagster_event is not None
                evaluation = execution.event.dagster_event.event_specific_data
                assert isinstance(evaluation, dg.AssetCheckEvaluation)
                out[str(evaluation.partition)] = evaluation
            return out

        # The readings are right: the blocking checks pass on every hour and on the day.
        for check in ("aggregate_integrity", "plausible_values"):
            assert {k: e.passed for k, e in evaluations("readings_hourly", check).items()} == dict.fromkeys(hours, True)
            assert evaluations("readings_daily", check)[day].passed
        # Each hour holds every frame of its sensors; the day only three of its 24 hours: a warning.
        assert all(e.passed for e in evaluations("readings_hourly", "completeness").values())
        completeness = evaluations("readings_daily", "completeness")[day]
        assert not completeness.passed and completeness.severity is dg.AssetCheckSeverity.WARN
        # The events are right too: their blocking checks pass on every hour and on the day.
        assert {k: e.passed for k, e in evaluations("events_hourly", "events_valid").items()} == dict.fromkeys(
            hours, True
        )
        assert {
            k: e.passed for k, e in evaluations("events_hourly", "event_aggregates_consistent").items()
        } == dict.fromkeys(hours, True)
        assert evaluations("events_daily", "event_aggregates_consistent")[day].passed
        # The checks on the newest readings ran too.
        assert evaluations("decoded_data", "readings_valid")

        (event,) = instance.fetch_materializations(dg.AssetKey("data_quality_report"), limit=1).records
        materialization = event.asset_materialization
        assert materialization is not None
        html = Path(str(materialization.metadata["report_html"].value))
        sidecar = Path(str(materialization.metadata["report_json"].value))
    assert html.exists() and html.parent == demo.state_dir / "reports" / "data-quality"
    # Four charts of readings and four of the day's events.
    assert html.read_text().count('src="data:image/png;base64,') == 8
    report = json.loads(sidecar.read_text())
    ledger = Path(str(_record(demo)["ledger"]))
    frame_readings = sum(
        len(m["readings"]) for m in map(json.loads, ledger.read_text().splitlines()) if "/sensor-mode/" in m["topic"]
    )
    assert report["day"] == day and report["summary"]["readings"] == frame_readings
    # The events section counts the history's events: the ledger's, all on that day.
    kinds = Counter(str(e["kind"]) for e in ledger_events([ledger]))
    assert {k: report["events"]["by_kind"][k] for k in ("state", "access", "indicator")} == {
        k: kinds[k] for k in ("state", "access", "indicator")
    }
    assert report["summary"]["low_completeness_hours"] == SENSORS * 21  # the 21 hours before the history
    assert f"data_quality_report {day}: {html}" in demo.output
    assert "events_hourly: 3 partitions materialized" in demo.output and f"events_daily: {day}" in demo.output


def test_printed_commands_work_in_a_fresh_shell(demo: Demo) -> None:
    commands = [line[len(PROMPT) :] for line in demo.output.splitlines() if line.startswith(PROMPT)]
    assert commands and commands[0].startswith("source ") and commands[0].endswith("/bin/activate")
    script = "\n".join(["set -euo pipefail", *commands])
    result = subprocess.run(
        ["env", "-i", f"PATH={SYSTEM_PATH}", f"HOME={os.environ.get('HOME', '/root')}", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"the printed commands failed:\n{script}\n{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "answering" in out and "not answering" not in out  # f2 stack status
    assert "device_id | datapoint_id" in out and " rows)" in out  # psql: latest_values
    assert 'f2_messages_in_total{daemon="processor"}' in out  # the processor's metrics
    assert '"healthy": true' in out  # the sink's /healthz


def test_a_second_demo_up_loads_nothing_again(demo: Demo) -> None:
    record = _record(demo)
    ledger = Path(str(record["ledger"]))
    size = ledger.stat().st_size
    with _instance(demo) as instance:
        runs = instance.get_runs_count()
    again = demo_up(demo.env, demo.end)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "not loaded again" in again.stdout and "history: replaying" not in again.stdout
    assert _record(demo) == record and ledger.stat().st_size == size
    with _instance(demo) as instance:
        assert instance.get_runs_count() == runs


def _stack_env(demo: Demo) -> dict[str, str]:
    """The stack's F2_* settings, as `f2 stack env` prints them."""
    out = subprocess.run([F2, "stack", "env"], env=demo.env, capture_output=True, text=True, check=True).stdout
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.startswith("export "))
    return {k: shlex.split(v)[0] if v else "" for k, v in pairs}
