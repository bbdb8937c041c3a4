"""The hourly cross-hop reconciliation against the running pipeline (issue 19, first acceptance bullet).

A simulated fleet's traffic reconciles: the check passes for its controllers, with the bridges' counts and the
raw records equal to the messages the broker acknowledged (the simulator's ledger). Then the test itself
(a) deletes readings from decoded_data behind the platform's back, (b) skips the processor past a raw record
it never processed, (c) lets an unregistered controller send frames: the check fails and lists exactly the
differences of (a) and (b), and (c) as dead letters of reason unknown-controller, not as a loss.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from f2_platform.defs.reconciliation.assets import (
    CHECK_NAME,
    HOURLY_RECONCILIATION,
    hourly_reconciliation,
    reconciliation_partitions,
)
from f2_platform.defs.resources import KafkaAdminResource
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.realtime import publish, simulate, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTROLLERS = 3
MESSAGES = 600
UNKNOWN_FRAMES = 3
DELETED_ROWS = 4


class Webhook:
    """A real HTTP receiver for the alert webhook."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("F2_ALERT_WEBHOOK_URL", hook.url)
    try:
        yield hook
    finally:
        hook.close()


def micros(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def hour_keys(start: datetime, end: datetime) -> list[str]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    keys = []
    while hour <= end:
        keys.append(hour.strftime("%Y-%m-%d-%H:%M"))
        hour += timedelta(hours=1)
    return keys


def unread(kafka: KafkaAdminResource, group: str, topic: str) -> int:
    """Records of `topic` (read_committed) past `group`'s committed offsets. Not end minus committed: a
    transactional topic ends with a commit marker that is no record."""
    ends = kafka.end_offsets(topic)
    committed = kafka.committed_offsets(group, topic)
    behind = {p: committed.get(p) or 0 for p, end in ends.items() if (committed.get(p) or 0) < end}
    if not behind:
        return 0
    with kafka.consumer("f2-test-reconcile-probe") as consumer:
        consumer.assign([TopicPartition(topic, p, o) for p, o in behind.items()])
        records = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            records += sum(1 for m in consumer.consume(100, timeout=0.5) if m.error() is None)
            positions = consumer.position([TopicPartition(topic, p) for p in behind])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                return records
        return records + 1


def wait_settled(kafka: KafkaAdminResource, timeout: float = 120) -> None:
    """Until the processor has committed every raw record and the sink every decoded record and event."""

    def settled() -> bool:
        return not any(
            unread(kafka, group, topic)
            for group, topic in (
                (topics.GROUP_PROCESSOR, topics.RAW),
                (topics.GROUP_SINK, topics.DECODED),
                (topics.GROUP_SINK, topics.EVENTS),
            )
        )

    wait_for(settled, timeout, interval=1.0, what="the processor and the sink to commit everything")


def reconcile_hours(
    keys: list[str], instance: dg.DagsterInstance, resources: dict[str, object]
) -> tuple[bool, list[dict[str, Any]]]:
    """Materializes the asset for each hour; (all checks passed, the check metadata of each)."""
    passed, metadata = True, []
    for key in keys:
        result = dg.materialize(
            [hourly_reconciliation], partition_key=key, instance=instance, resources=resources, raise_on_error=True
        )
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.check_name == CHECK_NAME and evaluation.asset_key == HOURLY_RECONCILIATION
        passed = passed and evaluation.passed
        metadata.append({k: v.value for k, v in evaluation.metadata.items()})
    return passed, metadata


def stored_results(ts: psycopg.Connection, keys: list[str], macs: list[str]) -> dict[str, dict[str, Any]]:
    """reconciliation_results of the hours, summed per controller, with their differences."""
    hours = [datetime.strptime(k, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) for k in keys]
    cur = ts.execute(
        "SELECT controller_mac, passed, bridge_counted, raw_records, stored, dead_lettered, ignored, "
        "readings_stored, dead_letters_by_reason, differences, difference_list "
        "FROM reconciliation_results WHERE hour = ANY(%s) AND controller_mac = ANY(%s)",
        (hours, macs),
    )
    out: dict[str, dict[str, Any]] = {}
    for mac, ok, counted, raw, stored, dead, ignored, readings, reasons, n, listed in cur.fetchall():
        row = out.setdefault(
            mac,
            {"passed": True, "bridge_counted": 0, "raw_records": 0, "stored": 0, "dead_lettered": 0, "ignored": 0,
             "readings_stored": 0, "dead_letters_by_reason": Counter(), "differences": 0, "difference_list": []},
        )  # fmt: skip
        row["passed"] = row["passed"] and ok
        for name, value in (("bridge_counted", counted), ("raw_records", raw), ("stored", stored),
                            ("dead_lettered", dead), ("ignored", ignored), ("readings_stored", readings),
                            ("differences", n)):  # fmt: skip
            row[name] += value
        row["dead_letters_by_reason"].update(reasons)
        row["difference_list"] += listed
    return out


def test_the_hourly_check_passes_then_lists_exactly_what_was_done_behind_its_back(
    migrated: ConnectionSettings,
    stack_env: dict[str, str],
    pipeline,
    instance: dg.DagsterInstance,
    code_resources: dict[str, object],
    ts: psycopg.Connection,
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    kafka = KafkaAdminResource()
    # Controllers of this run's own (the reconciliation is per controller: no other test's traffic counts).
    prefix, unknown_mac = f"f25a{secrets.token_hex(3)}", f"f25b{secrets.token_hex(4)}"
    started = datetime.now(UTC)
    ledger = tmp_path / "ledger.jsonl"
    proc = simulate(
        stack_env,
        "--controllers", str(CONTROLLERS), "--mac-prefix", prefix, "--interval", "0.2", "--count", str(MESSAGES),
        "--ledger", str(ledger), "--seed", str(int(time.time())), "--reconcile", "--reconcile-timeout", "180",
    )  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()[-2000:]
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert len(lines) == MESSAGES
    macs = sorted({line["topic"].split("/")[1].removeprefix("f2-") for line in lines})
    assert macs == [f"{prefix}{i:02x}" for i in range(1, CONTROLLERS + 1)], macs
    sent = Counter(line["topic"].split("/")[1].removeprefix("f2-") for line in lines)
    wait_settled(kafka)
    try:
        # 1. The fleet's traffic reconciles; the bridges counted every acknowledged message, f2.raw holds each.
        keys = hour_keys(started, datetime.now(UTC))
        reconcile_hours(keys, instance, code_resources)
        results = stored_results(ts, keys, macs)
        assert sorted(results) == macs
        for mac in macs:
            row = results[mac]
            assert row["passed"], row["difference_list"]
            assert row["bridge_counted"] == row["raw_records"] == sent[mac]
            assert row["stored"] + row["dead_lettered"] + row["ignored"] == sent[mac]
        readings = {
            (micros(r["timestamp"]), int(r["device_id"]), int(r["datapoint_id"]))
            for line in lines
            for r in line["readings"]
        }
        assert sum(results[m]["readings_stored"] for m in macs) >= len(readings)

        # (a) rows deleted from decoded_data behind the platform's back (readings of this run only): the one
        # DELETE on decoded_data the acceptance asks for, of minutes-old rows no compression policy has reached.
        deleted = sorted(readings)[:DELETED_ROWS]
        for t, device, datapoint in deleted:
            ts.execute(
                'DELETE FROM decoded_data WHERE "timestamp" = %s AND device_id = %s AND datapoint_id = %s',
                (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=t), device, datapoint),
            )

        # (b) a raw record the processor never sees: processor stopped, the frame published, its committed
        # offset moved past it, processor restarted.
        frame = next(line for line in lines if "/sensor-" in line["topic"] and line["readings"])
        payload = json.loads(frame["payload"])
        payload["timestamp"] = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        processor = pipeline.get("processor-0")
        processor.stop()
        raw_ends = kafka.end_offsets(topics.RAW, committed_only=False)
        publish(migrated, [(frame["topic"], json.dumps(payload).encode())])
        wait_for(
            lambda: sum(kafka.end_offsets(topics.RAW, committed_only=False).values()) == sum(raw_ends.values()) + 1,
            30,
            what="the frame in f2.raw",
        )
        after = kafka.end_offsets(topics.RAW, committed_only=False)
        ((skipped_partition, skipped_offset),) = [(p, raw_ends[p]) for p in after if after[p] != raw_ends[p]]
        skipper = Consumer({**kafka.client_config(), "group.id": topics.GROUP_PROCESSOR, "enable.auto.commit": False})
        try:
            skipper.commit(
                offsets=[TopicPartition(topics.RAW, skipped_partition, skipped_offset + 1)], asynchronous=False
            )
        finally:
            skipper.close()
        pipeline.restart("processor-0")

        # (c) a controller that sends before it is registered.
        unknown = [
            (frame["topic"].replace(frame["topic"].split("/")[1], f"f2-{unknown_mac}"), frame["payload"].encode())
            for _ in range(UNKNOWN_FRAMES)
        ]
        publish(migrated, unknown)
        wait_settled(kafka)

        keys = hour_keys(started, datetime.now(UTC))
        passed, metadata = reconcile_hours(keys, instance, code_resources)
        assert not passed
        results = stored_results(ts, keys, [*macs, unknown_mac])
        listed = [d for m in macs for d in results[m]["difference_list"]]
        # Exactly the two things done: the deleted rows, one record never processed.
        missing_rows = [d for d in listed if d["kind"] == "missing-in-decoded_data"]
        not_processed = [d for d in listed if d["kind"] == "not-processed"]
        assert len(missing_rows) + len(not_processed) == len(listed), listed
        assert [(d["partition"], d["offset"]) for d in not_processed] == [(skipped_partition, skipped_offset)]
        assert not_processed[0]["mqtt_topic"] == frame["topic"]
        assert sorted(tuple(k) for d in missing_rows for k in d["missing"]) == deleted
        assert {d["controller"] for d in missing_rows} <= set(macs)
        # The check's metadata lists the same differences, and the counts per hop of every controller.
        shown = [row for m in metadata if "difference_list" in m for row in m["difference_list"].records]
        assert {(r.data["partition"], r.data["offset"]) for r in shown if r.data["kind"] == "not-processed"} >= {
            (skipped_partition, skipped_offset)
        }
        # (c) is dead-lettered with its reason, counted, and not a loss.
        unregistered = results[unknown_mac]
        assert unregistered["passed"], unregistered["difference_list"]
        assert (
            unregistered["dead_lettered"]
            == unregistered["raw_records"]
            == unregistered["bridge_counted"]
            == UNKNOWN_FRAMES
        )
        assert dict(unregistered["dead_letters_by_reason"]) == {"unknown-controller": UNKNOWN_FRAMES}
        # The failed check alerted through the webhook, naming the check.
        assert any(b["details"]["check"] == CHECK_NAME and b["severity"] == "ERROR" for b in webhook.bodies)
    finally:
        # The readings stay (docs/testing.md); the results, events and registry entries of this run go.
        ts.execute("DELETE FROM reconciliation_results WHERE controller_mac = ANY(%s)", ([*macs, unknown_mac],))
        ts.execute("DELETE FROM device_events WHERE controller_mac = ANY(%s)", (macs,))
        ts.execute("DELETE FROM component_states WHERE controller_mac = ANY(%s)", (macs,))
        ts.execute("DELETE FROM controller_presence WHERE controller_mac = ANY(%s)", ([*macs, unknown_mac],))
        devices = sorted({int(r["device_id"]) for line in lines for r in line["readings"]})
        with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
            reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = ANY(%s)', (macs,))  # cascades to pins
            reg.execute('DELETE FROM "VtDevice".devices WHERE deviceid = ANY(%s)', (devices,))
            reg.execute('DELETE FROM "VtDevice".f2_enrollments WHERE mac = ANY(%s)', (macs,))


def test_an_hour_long_past_is_reconciled_as_a_backfill_would(
    instance: dg.DagsterInstance, code_resources: dict[str, object], ts: psycopg.Connection
) -> None:
    """An hour nothing was received in (the first partition: every topic's records are younger): the check
    passes with nothing to account for, writes no rows and says so."""
    key = reconciliation_partitions.get_first_partition_key()
    assert key is not None
    passed, (metadata,) = reconcile_hours([key], instance, code_resources)
    assert passed
    assert (metadata["raw_records"], metadata["bridge_counted"], metadata["differences"]) == (0, 0, 0)
    assert isinstance(metadata["registry_version"], int)
    rows = ts.execute(
        "SELECT count(*) FROM reconciliation_results WHERE hour = %s", (datetime(2025, 1, 1, tzinfo=UTC),)
    )
    assert rows.fetchone() == (0,)
