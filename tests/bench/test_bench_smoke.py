"""`f2 bench` for real, in miniature: every stage runs its real daemons against the session stack for a couple
of seconds; the result has the reported structure, every count reconciles, and the files are written.

The numbers themselves are not checked: targets are reported by `f2 bench`, never asserted in timed tests.
"""

from __future__ import annotations

import json

import pytest

from bench.config import ALL_STAGES, BenchConfig
from bench.report import JSON_NAME, LATENCY_PNG, MARKDOWN_NAME, THROUGHPUT_PNG
from bench.runner import run_bench
from tests.realtime import session_present

pytestmark = [pytest.mark.integration]


def test_every_stage_runs_and_reconciles(stack, migrated, tmp_path) -> None:
    config = BenchConfig(
        duration_s=2.0,
        warmup_s=1.0,
        output_dir=tmp_path,
        controllers=20,
        publishers=1,
        levels=(0.5,),
        prefill_scale=0.15,
        backlog_frames=3000,
        drain_timeout_s=60,
        backpressure_stop_s=4.0,
        broker_warmup_max_s=6.0,
        sample_interval_s=0.25,
        # The session stack may hold records other tests left unread: the bench may skip them.
        force=True,
    )
    result = run_bench(config, say=print, stack=stack)

    assert [s.name for s in result.stages] == list(ALL_STAGES)
    # The bench's bridges ended their sessions: none takes a share of the next test's messages.
    assert [session_present(migrated, f"f2-bridge-bench-{i}") for i in range(config.bridges)] == [
        False
    ] * config.bridges
    assert result.machine["cpu_probe_s_at_start"] > 0
    for stage in result.stages:
        assert stage.error is None, f"{stage.name}: {stage.error}"
        assert any(n.startswith("CPU probe (a fixed Python loop on one core)") for n in stage.notes), stage.name
        assert stage.measures, stage.name
        primary = stage.measures[0]
        assert primary.value is not None and primary.value > 0, (stage.name, primary)
        for rec in stage.reconciliations.values():
            assert rec.ok, f"{stage.name}: {rec}"
        assert any(p.role in ("bench", "daemon") and p.cpu_s > 0 for p in stage.processes), stage.name

    for name, unit in (("bridge", "messages"), ("processor", "frames"), ("sink", "rows"), ("e2e", "frames")):
        measured = result.stage(name)
        assert measured is not None and measured.unit == unit
        assert measured.reconciliations, f"{name} reconciled nothing"
        daemons = [p for p in measured.processes if p.role == "daemon"]
        assert daemons and all(p.peak_rss_mb > 0 and p.cpu_s_per_1000 is not None for p in daemons), name
        assert all(p.rss_target and p.rss_passed is not None for p in daemons), name
        assert measured.timeseries and any(measured.timeseries.values()), name
    bridge = result.stage("bridge")
    assert bridge is not None and any(p.role == "generator" for p in bridge.processes)
    # The broker was warmed up before the first stage that uses it, and every such stage shows what the
    # broker's JIT compiler used of its window.
    assert [n for n in result.notes if n.startswith("broker warm-up: the pipeline ran")], result.notes
    for name in ("bridge", "processor", "sink", "e2e", "backpressure"):
        measured = result.stage(name)
        assert measured is not None
        assert any(p.name == "kafka: of which its JIT compiler" for p in measured.processes), name

    e2e = result.stage("e2e")
    assert e2e is not None and len(e2e.latency) == 1
    # The traffic mix's events were reconciled too, and the results say what the mix was.
    assert result.config["event_share"] == 0.1
    assert "sustained maximum: ledger events = device_events, component_states" in e2e.reconciliations
    mix = e2e.measure("messages/s of the traffic mix, MQTT -> committed rows and events")
    assert mix is not None and mix.value
    assert "status and reader messages/s (events)" in (e2e.measures[0].note or "")
    assert "events: " in e2e.latency[0].reconciliation.detail
    bp = result.stage("backpressure")
    assert bp is not None and "every acknowledged event = device_events, component_states" in bp.reconciliations
    lat = e2e.latency[0]
    assert lat.samples > 0 and lat.p50_s is not None and lat.p99_s is not None and lat.p50_s <= lat.p99_s
    assert lat.reconciliation is not None and lat.reconciliation.ok, lat.reconciliation
    sustained = e2e.measure("sustained frames/s, MQTT -> committed rows")
    assert sustained is not None and sustained.target and sustained.passed is False  # 2 s is not 60 s
    assert "naive stage" in sustained.ratios

    backpressure = result.stage("backpressure")
    assert backpressure is not None
    # The offered load is the end-to-end stage's sustained maximum; the processors kept up without the sinks.
    offered = backpressure.measures[0]
    assert offered.note.startswith(f"offered {sustained.value:,.0f}")
    stopped_decoding = backpressure.measure("processor frames/s while the sinks were stopped")
    assert stopped_decoding is not None and stopped_decoding.value
    backlog = backpressure.measure("backlog in f2.decoded when the sinks started again")
    assert backlog is not None and backlog.value and backlog.value > 0
    catch_up = backpressure.measure("catch-up: sinks started again -> every reading in decoded_data")
    assert catch_up is not None and catch_up.value is not None and catch_up.value > 0
    memory = {m.name for m in backpressure.measures if m.unit == "MB"}
    assert memory == {
        "bridge-0 RSS growth while the sinks were stopped",
        "processor-0 RSS growth while the sinks were stopped",
        "sink-0 peak RSS while catching up",
    }
    assert {p.name for p in backpressure.processes if p.role == "daemon"} == {
        "bridge-0",
        "processor-0",
        "sink-0",
        "sink-0 restarted",
    }

    sink = result.stage("sink")
    assert sink is not None
    assert {"COPY+upsert", "naive stage"} <= set(sink.measures[0].ratios)
    assert sink.measure("share of the COPY+upsert reference") is not None

    # Every daemon was stopped with one SIGTERM and shut down cleanly (a second signal exits at once, and its
    # consumer group membership would linger into the next stage).
    logs = sorted((tmp_path / "raw").glob("*/logs/*.log"))
    assert logs
    for log in logs:
        text = log.read_text()
        assert "second signal" not in text and "stopped cleanly" in text, log.name

    data = json.loads((tmp_path / JSON_NAME).read_text())
    assert data["machine"]["logical_cores"] >= 1 and data["machine"]["memory_gb"] > 0
    assert [s["name"] for s in data["stages"]] == list(ALL_STAGES)
    table = (tmp_path / MARKDOWN_NAME).read_text()
    for stage_name in ALL_STAGES:
        assert f"| {stage_name} |" in table
    assert "cores" in table and "GB memory" in table
    assert "90% sensor frames, 10% status and reader messages" in table
    for chart in (THROUGHPUT_PNG, LATENCY_PNG):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"[{chart}]({chart})" in table


def test_the_end_to_end_stage_runs_on_the_kafka_cluster(cluster_stack, cluster_migrated, tmp_path) -> None:
    """`f2 bench --kafka-brokers 3 --stages e2e` in miniature, on the session's three-node cluster.

    The closed loop advances by what the sink commits, and a round trip through the cluster (acks=all to three
    replicas, transaction markers) took 2 to 3 s with 3,000 frames in flight: a 2 s window once saw no commit
    in CI. More frames in flight and a longer window keep several commits inside it."""
    config = BenchConfig(
        duration_s=4.0,
        warmup_s=2.0,
        stages=("e2e",),
        output_dir=tmp_path,
        controllers=20,
        publishers=1,
        levels=(0.5,),
        backlog_frames=10_000,
        drain_timeout_s=60,
        broker_warmup_max_s=4.0,
        sample_interval_s=0.25,
        force=True,
    )
    result = run_bench(config, say=print, stack=cluster_stack)

    assert result.config["kafka_brokers"] == 3
    assert [session_present(cluster_migrated, f"f2-bridge-bench-{i}") for i in range(config.bridges)] == [
        False
    ] * config.bridges
    (e2e,) = result.stages
    assert e2e.error is None, e2e.error
    assert e2e.reconciliations and all(rec.ok for rec in e2e.reconciliations.values())
    assert e2e.latency[0].reconciliation is not None and e2e.latency[0].reconciliation.ok
    services = {p.name for p in e2e.processes if p.role == "service"}
    assert {"kafka-1", "kafka-2", "kafka-3", "kafka: of which its JIT compiler"} <= services, services
    assert "Kafka: 3 node(s)" in (tmp_path / MARKDOWN_NAME).read_text()
