"""`f2 trace` of an event (issue 19, item 3, for events): a door's state change and a reader scan of a controller
of this test go through the running pipeline; the trace of each names the raw record that carried it (found by
the test itself in f2.raw, by the MQTT topic and payload it published), the f2.events record the sink stored, the
sink batch, and the registry and decoder versions of the processor transaction that decoded it (checked against
the transaction header the test finds itself in f2.decoded and f2.events). A reader's token appears nowhere in
the trace, only its fingerprint.

The controller has a random MAC of this test and is not registered (events do not need the registry); its rows
are removed afterwards."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Message

from f2_platform.stack.manager import Stack
from streaming.kafka import topics
from streaming.kafka.trace_header import H_BATCH, BatchTrace, parse_batch
from streaming.settings import ConnectionSettings
from tests.dagster.test_deadletter_replay import Tail, f2, headers_of, registry_version
from tests.realtime import publish, wait_for

pytestmark = [pytest.mark.integration]

HOPS = ["device time", "bridge received", "in f2.raw", "processor", "sink commit"]


@pytest.fixture()
def event_controller(migrated: ConnectionSettings) -> Iterator[str]:
    mac = "e6" + uuid.uuid4().hex[:10]
    yield mac
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        for table in ("device_events", "component_states", "controller_presence"):
            ts.execute(f"DELETE FROM {table} WHERE controller_mac = %s", (mac,))  # noqa: S608


def header_holding(records: list[Message], raw: Message) -> BatchTrace:
    """The processor transaction header (on f2.decoded or f2.events) whose raw ranges hold `raw`."""
    holding = []
    for m in records:
        text = headers_of(m).get(H_BATCH)
        if text is not None:
            batch = parse_batch(text)
            if batch.holds(raw.partition() or 0, raw.offset() or 0):
                holding.append(batch)
    assert len(holding) == 1, f"{len(holding)} transaction headers hold raw offset {raw.partition()}/{raw.offset()}"
    return holding[0]


def test_an_event_is_traced_to_its_raw_record_and_transaction(
    migrated: ConnectionSettings, stack: Stack, stack_env, pipeline, code_location, instance, event_controller
) -> None:
    mac = event_controller
    raw_tail, decoded_tail, events_tail = (Tail(migrated, t) for t in (topics.RAW, topics.DECODED, topics.EVENTS))
    at = datetime.now(UTC).replace(microsecond=431000) - timedelta(minutes=2)
    door_topic = f"stat/f2-{mac}/access-control-mode/J2/door-sensors"
    reader_topic = f"tele/f2-{mac}/access-control-mode/J1/reader-1"
    token = f"NFC-{uuid.uuid4().hex}".encode()
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
    scan_at = at + timedelta(seconds=3)
    door = json.dumps({"timestamp": stamp, "door-sensor-1": True, "door-sensor-2": False}).encode()
    scan = json.dumps({"timestamp": scan_at.strftime("%Y-%m-%d %H:%M:%S.%f"), "data": repr(token)}).encode()
    publish(migrated, [(door_topic, door), (reader_topic, scan)])

    def stored() -> int:
        with psycopg.connect(migrated.timeseries_dsn) as ts:
            row = ts.execute("SELECT count(*) FROM device_events WHERE controller_mac = %s", (mac,)).fetchone()
        return int(row[0]) if row else 0

    wait_for(lambda: stored() == 3, 60, what="the door's two events and the scan")

    def ours(tail: Tail) -> list[Message]:
        return [m for m in tail.poll(0.5) if m.key() == mac.encode()]

    wait_for(lambda: len(ours(raw_tail)) >= 2 and len(ours(events_tail)) >= 3, 30, what="the records in Kafka")
    raws = ours(raw_tail)
    (door_raw,) = [m for m in raws if headers_of(m)[topics.H_MQTT_TOPIC] == door_topic]
    (scan_raw,) = [m for m in raws if headers_of(m)[topics.H_MQTT_TOPIC] == reader_topic]
    assert door_raw.value() == door, "the bridge forwards a status payload as published"

    def transaction_headers() -> list[Message]:
        decoded_tail.poll(0.5)
        events_tail.poll(0.5)
        return [m for m in decoded_tail.records + events_tail.records if H_BATCH in headers_of(m)]

    def held(raw: Message) -> bool:
        return any(
            parse_batch(headers_of(m)[H_BATCH]).holds(raw.partition() or 0, raw.offset() or 0)
            for m in transaction_headers()
        )

    # A header is written with its transaction's first record: once the events are stored, it is in Kafka.
    wait_for(lambda: held(door_raw) and held(scan_raw), 30, what="the transaction headers")
    headers = transaction_headers()
    version_now = registry_version(migrated.registry_dsn)

    # The door's state change, by its component: the raw record, the transaction, the events record, the batch.
    traced = f2(
        stack_env, "trace", "--controller", mac, "--component", "door-sensor-1", "--at", at.isoformat(), "--json"
    )
    assert traced.returncode == 0, traced.stdout + traced.stderr
    trace = json.loads(traced.stdout)
    assert (trace["timestamp"], trace["kind"], trace["state"], trace["connector"]) == (
        at.isoformat().replace("+00:00", "Z"),
        "state",
        "open",
        2,
    )
    assert (trace["raw"]["partition"], trace["raw"]["offset"]) == (door_raw.partition(), door_raw.offset())
    assert trace["raw"]["mqtt_topic"] == door_topic and trace["raw"]["payload"] == door.decode()
    assert trace["raw"]["received_at"] == headers_of(door_raw)[topics.H_RECEIVED_AT]
    batch = header_holding(headers, door_raw)
    assert trace["registry_version"] == batch.registry_version and batch.registry_version <= version_now
    assert trace["decoder_version"] == batch.decoder_version and batch.decoder_version
    (door_event,) = [
        m
        for m in events_tail.records
        if m.key() == mac.encode() and json.loads(m.value() or b"{}").get("component") == "door-sensor-1"
    ]
    assert trace["decoded"]["topic"] == topics.EVENTS
    assert (trace["decoded"]["partition"], trace["decoded"]["offset"]) == (door_event.partition(), door_event.offset())
    assert trace["sink_batch"] is not None and trace["sink_batch"]["events"] >= 1
    assert [h["name"] for h in trace["hops"]] == HOPS
    assert trace["notes"] == []

    # The scan a second before or after `--at` is the nearest one; the token is nowhere, its fingerprint is.
    asked = scan_at - timedelta(milliseconds=700)
    text = f2(stack_env, "trace", "--controller", mac.upper(), "--component", "reader-1", "--at", asked.isoformat())
    assert text.returncode == 0, text.stdout + text.stderr
    fingerprint = hmac.new(
        (stack.layout.secrets_dir / "credential-secret").read_text().strip().encode(), token, hashlib.sha256
    ).hexdigest()
    assert f"event: controller {mac}, reader-1 at J1" in text.stdout
    assert " access event\n" in text.stdout and fingerprint in text.stdout
    assert f"raw record: {topics.RAW} partition {scan_raw.partition()} offset {scan_raw.offset()}" in text.stdout
    assert f"registry version: {header_holding(headers, scan_raw).registry_version}" in text.stdout
    assert "the nearest one is traced" in text.stdout
    assert token.decode() not in text.stdout and token.decode()[4:] not in text.stdout

    # The same trace as a Dagster run's metadata.
    run = code_location.resolve_job_def("trace_event_job").execute_in_process(
        instance=instance,
        run_config={
            "ops": {"trace_event": {"config": {"controller": mac, "component": "door-sensor-1", "at": at.isoformat()}}}
        },
    )
    assert run.success
    (step,) = [e for e in run.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in step.event_specific_data.metadata.items()}
    assert (metadata["raw_partition"], metadata["raw_offset"]) == (str(door_raw.partition()), str(door_raw.offset()))
    assert metadata["registry_version"] == str(batch.registry_version)

    # A component that sent no event: exit status 1, saying so.
    missing = f2(stack_env, "trace", "--controller", mac, "--component", "siren-1", "--at", at.isoformat())
    assert missing.returncode == 1 and f"device_events holds no event of siren-1 of controller {mac}" in missing.stdout
    for tail in (raw_tail, decoded_tail, events_tail):
        tail.close()


def test_trace_says_what_to_give_it(stack_env) -> None:
    nothing = f2(stack_env, "trace", "--at", "2026-01-01T00:00Z")
    assert nothing.returncode == 2 and "--device and --datapoint, or an event with --controller" in nothing.stderr
    both = f2(stack_env, "trace", "--device", "1", "--controller", "aabbccddee01", "--at", "2026-01-01T00:00Z")
    assert both.returncode == 2 and "not both" in both.stderr
    half = f2(stack_env, "trace", "--controller", "aabbccddee01", "--at", "2026-01-01T00:00Z")
    assert half.returncode == 2 and "--controller and --component together" in half.stderr
    bad = f2(stack_env, "trace", "--controller", "aabbcc", "--component", "reader-1", "--at", "2026-01-01T00:00Z")
    assert bad.returncode == 2 and "'aabbcc' is not a MAC" in bad.stderr
