"""A controller that sends before it is registered, then is registered: its frames are dead-lettered
`unknown-controller` by the running pipeline; `f2 deadletters list` shows them; after the registration the
sensor proposes a replay; the replay stores exactly the readings the frames carry (computed by the test from
what it sent, with the simulator's encoder and the ids the registry assigned) and a second replay changes
nothing; `f2 trace` names the raw record that carried a reading (found by the test itself in f2.raw) and the
registry version that decoded it.

The controller has a random MAC of this test; its registry rows are removed afterwards, its readings stay (their
device ids are this run's alone)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from f2_platform.defs.deadletters.sensor import deadletter_replay_sensor
from f2_platform.defs.deadletters.summary_asset import deadletters_summary
from f2_platform.registry.sample import WiringSpec
from f2_platform.registry.seed import seed_fleet
from f2_platform.tracing.trace import guess_partition
from simulator.catalog import TEMPLATES, Wiring
from simulator.endpoints import device_time
from simulator.frames import encode_frame
from simulator.ledger import Ledger
from simulator.registry_ids import datapoint_ids, device_ids
from streaming.decoding.hex import format_hex
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.dagster.conftest import evaluate, materialization_metadata, sensor_context
from tests.realtime import F2, publish, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ENV = TEMPLATES["ENV-S1"]
FRAMES_PER_SENSOR = 4


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


class Tail:
    """Reads a topic from its end as of creation, keeping each record's coordinates."""

    def __init__(self, conn: ConnectionSettings, topic: str) -> None:
        self.consumer = Consumer(
            {**conn.kafka_config(), "group.id": f"test-{uuid.uuid4().hex}", "isolation.level": "read_committed"}
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [
            TopicPartition(topic, p, self.consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in partitions
        ]
        self.consumer.assign(ends)
        self.records: list[Message] = []

    def poll(self, seconds: float = 0.5) -> list[Message]:
        for m in self.consumer.consume(1000, seconds):
            if m.error() is None:
                self.records.append(m)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def headers_of(m: Message) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in (m.headers() or [])}


def f2(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([F2, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def registry_version(dsn: str) -> int:
    with psycopg.connect(dsn) as reg:
        row = reg.execute('SELECT version FROM "VtDevice".f2_registry_version').fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture()
def late_controller(migrated: ConnectionSettings) -> Iterator[str]:
    """A MAC of this test, not registered; whatever the test registers for it is removed afterwards."""
    mac = "e7" + uuid.uuid4().hex[:10]
    yield mac
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        rows = reg.execute(
            'SELECT p.deviceid FROM "VtDevice".devices c JOIN "VtDevice".connectors j ON j.controllerid = c.deviceid '
            'JOIN "VtDevice".pins p ON p.connectorid = j.connectorid WHERE c.macaddress = %s',
            (mac,),
        ).fetchall()
        reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = %s', (mac,))
        reg.execute('DELETE FROM "VtDevice".devices WHERE deviceid = ANY(%s)', ([r[0] for r in rows if r[0]],))


def frames(mac: str, first: datetime, count: int) -> list[tuple[str, bytes, int, dict[str, float]]]:
    """(topic, payload, position, values) of `count` frames per ENV-S1 sensor at J1 positions 1 and 2."""
    out = []
    for i in range(count):
        for position in (1, 2):
            at = first + timedelta(seconds=10 * i, milliseconds=137 * position)
            values = {"Temperature": 20 + i + position / 100, "Humidity": 40 + i / 4, "CO2": 600.0 + 7 * i + position}
            payload = json.dumps(
                {"timestamp": device_time(micros(at)), "data": format_hex(encode_frame(values, ENV.datapoints))}
            )
            out.append((f"tele/f2-{mac}/sensor-mode/J1/sensor-{position}", payload.encode(), position, values))
    return out


def expected_rows(
    sent: list[tuple[str, bytes, int, dict[str, float]]], ids: dict[int, int], points: dict[str, int]
) -> set[tuple[int, int, int, float]]:
    """(device time in microseconds, device id, datapoint id, value) of every reading the frames carry."""
    rows = set()
    for _, payload, position, values in sent:
        stamp = datetime.strptime(json.loads(payload)["timestamp"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        for label, value in values.items():
            decimals = next(p.decimals for p in ENV.datapoints if p.label == label)
            rows.add((micros(stamp), ids[position], points[label], round(value * 10**decimals) / 10**decimals))
    return rows


def stored_rows(dsn: str, device: list[int], first: datetime) -> set[tuple[int, int, int, float]]:
    with psycopg.connect(dsn) as ts:
        rows = ts.execute(
            'SELECT (extract(epoch FROM "timestamp") * 1000000)::bigint, device_id, datapoint_id, value '
            'FROM decoded_data WHERE device_id = ANY(%s) AND "timestamp" >= %s',
            (device, first - timedelta(minutes=1)),
        ).fetchall()
    return {(int(t), d, p, v) for t, d, p, v in rows}


def test_late_registration_is_replayed_once_and_traced(
    migrated, stack_env, pipeline, code_location, instance, code_resources, late_controller, tmp_path: Path
) -> None:
    mac = late_controller
    env = {**stack_env}
    dead_tail, raw_tail = Tail(migrated, topics.DEADLETTER), Tail(migrated, topics.RAW)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    sent = frames(mac, first, FRAMES_PER_SENSOR)
    publish(migrated, [(topic, payload) for topic, payload, _, _ in sent])
    for topic, payload, _, _ in sent:
        ledger.write(topic, payload, [])  # the readings' ids exist only once the controller is registered

    # The running processor dead-letters every frame: the controller is not registered.
    def ours() -> list[Message]:
        return [m for m in dead_tail.poll() if m.key() == mac.encode()]

    wait_for(lambda: len(ours()) >= len(sent), 60, what="the frames' dead letters")
    letters = ours()
    assert len(letters) == len(sent)
    assert {headers_of(m)[topics.H_REASON] for m in letters} == {"unknown-controller"}
    assert sorted(m.value() for m in letters) == sorted(payload for _, payload, _, _ in sent)

    # f2 deadletters list: the day, the reason, the controller, how many, none replayed yet.
    listed = f2(env, "deadletters", "list", "--since", "1h", "--controller", mac, "--json")
    assert listed.returncode == 0, listed.stderr
    (group,) = json.loads(listed.stdout)
    assert (group["reason"], group["controller"], group["count"]) == ("unknown-controller", mac, len(sent))
    assert group["status"] == {"pending": len(sent)}
    assert group["day"] == datetime.fromtimestamp(letters[0].timestamp()[1] / 1000, UTC).date().isoformat()
    text = f2(env, "deadletters", "list", "--since", "1h", "--controller", mac)
    assert text.returncode == 0, text.stderr
    assert f"{len(sent)} dead letter(s)" in text.stdout and mac in text.stdout and "unknown-controller" in text.stdout

    # The summary asset counts them by controller, reason and day, with samples.
    summary_run = dg.materialize([deadletters_summary], instance=instance, resources=code_resources)
    assert summary_run.success
    metadata = materialization_metadata(summary_run, "deadletters_summary")
    assert metadata["by_controller"][mac] == len(sent)
    assert f"| {group['day']} | unknown-controller | {mac} | {len(sent)} | pending {len(sent)} |" in metadata["groups"]
    samples = [x for x in metadata["samples"] if x["controller"] == mac]
    assert samples and all(x["payload"].encode() in {p for _, p, _, _ in sent} for x in samples)

    # Before the registration the sensor proposes nothing for this controller.
    before = registry_version(migrated.registry_dsn)
    result = evaluate(deadletter_replay_sensor, sensor_context(instance, code_resources, None))
    assert not [r for r in result.run_requests or [] if r.tags.get("f2/controller") == mac]

    # The controller is registered with its two sensors.
    with psycopg.connect(migrated.registry_dsn) as reg, reg.transaction():
        seed_fleet(
            reg,
            [(f"Late {mac}", mac)],
            [WiringSpec(mac, 1, p, f"Late Env {p} {mac}", "ENV-S1") for p in (1, 2)],
        )
    registered = registry_version(migrated.registry_dsn)
    assert registered > before
    with psycopg.connect(migrated.registry_dsn) as reg:
        ids_by_name = device_ids(reg, [Wiring(mac, 1, p, f"Late Env {p} {mac}", "ENV-S1") for p in (1, 2)])
        points = {
            label: i for (_, label), i in datapoint_ids(reg, {"ENV-S1": [p.label for p in ENV.datapoints]}).items()
        }
    ids = {p: ids_by_name[(mac, f"Late Env {p} {mac}")] for p in (1, 2)}
    expected = expected_rows(sent, ids, points)
    assert len(expected) == len(sent) * 3

    # The sensor proposes one replay of this controller's dead letters.
    cursor = json.dumps({"registry_version": before})
    result = evaluate(deadletter_replay_sensor, sensor_context(instance, code_resources, cursor))
    (request,) = [r for r in result.run_requests or [] if r.tags.get("f2/controller") == mac]
    assert isinstance(request, dg.RunRequest) and request.job_name == "deadletter_replay_job"
    assert json.loads(result.cursor or "{}") == {"registry_version": registered}
    # Nothing new since: the next evaluation skips.
    again = evaluate(deadletter_replay_sensor, sensor_context(instance, code_resources, result.cursor))
    assert not again.run_requests

    job = code_location.resolve_job_def(request.job_name)
    run = job.execute_in_process(instance=instance, run_config=request.run_config)
    assert run.success
    summary = run.output_for_node("replay_dead_letters")
    assert (summary["matched"], summary["replayed"], summary["already_replayed"]) == (len(sent), len(sent), 0)
    assert summary["readings_stored"] == len(expected) and summary["still_failing"] == {}
    assert summary["registry_versions"] == [registered]
    assert stored_rows(migrated.timeseries_dsn, list(ids.values()), first) == expected

    # A second replay, by the job and by the CLI, replays nothing and changes nothing.
    rerun = job.execute_in_process(instance=instance, run_config=request.run_config)
    assert rerun.success
    second = rerun.output_for_node("replay_dead_letters")
    assert (second["replayed"], second["already_replayed"], second["readings_stored"]) == (0, len(sent), 0)
    cli = f2(env, "deadletters", "replay", "--since", "1h", "--controller", mac, "--json")
    assert cli.returncode == 0, cli.stderr
    third = json.loads(cli.stdout)
    assert (third["replayed"], third["already_replayed"], third["readings_stored"]) == (0, len(sent), 0)
    assert stored_rows(migrated.timeseries_dsn, list(ids.values()), first) == expected
    with psycopg.connect(migrated.timeseries_dsn) as ts:
        (replays,) = ts.execute(
            "SELECT count(*) FROM deadletter_replays WHERE controller_mac = %s AND outcome = 'replayed'", (mac,)
        ).fetchone() or (0,)
    assert replays == len(sent)
    listed = json.loads(f2(env, "deadletters", "list", "--since", "1h", "--controller", mac, "--json").stdout)
    assert [g["status"] for g in listed] == [{"replayed": len(sent)}]

    # Now registered, new frames go through the pipeline; f2 trace names the raw record that carried one.
    later = frames(mac, datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1), 1)
    publish(migrated, [(topic, payload) for topic, payload, _, _ in later])
    for topic, payload, _, _ in later:
        ledger.write(topic, payload, [])
    live = expected_rows(later, ids, points)
    wait_for(
        lambda: live <= stored_rows(migrated.timeseries_dsn, list(ids.values()), first), 60, what="the live readings"
    )
    topic, payload, position, _ = later[1]

    def carrying() -> list[Message]:
        return [m for m in raw_tail.poll() if headers_of(m).get(topics.H_MQTT_TOPIC) == topic and m.value() == payload]

    wait_for(lambda: bool(carrying()), 30, what="the frame's raw record")
    carriers = carrying()
    assert len(carriers) == 1, "the test's frame is in f2.raw once"
    raw = carriers[0]
    stamp_us, device, datapoint, value = sorted(r for r in live if r[1] == ids[position])[1]
    at = (EPOCH + timedelta(microseconds=stamp_us)).isoformat()
    traced = f2(env, "trace", "--device", str(device), "--datapoint", str(datapoint), "--at", at, "--json")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    trace = json.loads(traced.stdout)
    assert (trace["raw"]["partition"], trace["raw"]["offset"]) == (raw.partition(), raw.offset())
    assert trace["raw"]["mqtt_topic"] == topic and trace["raw"]["payload"] == payload.decode()
    assert trace["raw"]["received_at"] == headers_of(raw)[topics.H_RECEIVED_AT]
    assert trace["registry_version"] == registered == registry_version(migrated.registry_dsn)
    assert trace["decoder_version"] and trace["value"] == value
    assert trace["sink_batch"] is not None and [h["name"] for h in trace["hops"]] == [
        "device time",
        "bridge received",
        "in f2.raw",
        "processor",
        "sink commit",
    ]
    # librdkafka's default partitioner puts a key where the trace looks first (CRC-32 of the key).
    raw_partitions = len(raw_tail.consumer.list_topics(topics.RAW, timeout=10).topics[topics.RAW].partitions)
    assert raw.partition() == guess_partition(mac.encode(), raw_partitions)
    # The same trace as a Dagster run's metadata.
    run = code_location.resolve_job_def("trace_reading_job").execute_in_process(
        instance=instance,
        run_config={"ops": {"trace_reading": {"config": {"device_id": device, "datapoint_id": datapoint, "at": at}}}},
    )
    assert run.success
    (step,) = [e for e in run.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in step.event_specific_data.metadata.items()}
    assert (metadata["raw_partition"], metadata["raw_offset"]) == (str(raw.partition()), str(raw.offset()))
    assert metadata["registry_version"] == str(registered)
    text = f2(env, "trace", "--device", str(device), "--datapoint", str(datapoint), "--at", at)
    assert (
        f"partition {raw.partition()} offset {raw.offset()}" in text.stdout
        and f"registry version: {registered}" in text.stdout
    )

    # A replayed reading's trace names its dead letter and the raw record behind it.
    topic0, payload0, position0, _ = sent[0]
    stamp_us, device, datapoint, _ = sorted(r for r in expected if r[1] == ids[position0])[0]
    at = (EPOCH + timedelta(microseconds=stamp_us)).isoformat()
    replayed = json.loads(
        f2(env, "trace", "--device", str(device), "--datapoint", str(datapoint), "--at", at, "--json").stdout
    )
    (letter,) = [m for m in letters if m.value() == payload0]
    (replay,) = replayed["replays"]
    assert (replay["deadletter_partition"], replay["deadletter_offset"]) == (letter.partition(), letter.offset())
    source = headers_of(letter)
    assert (replay["source_partition"], replay["source_offset"]) == (
        int(source[topics.H_SOURCE_PARTITION]),
        int(source[topics.H_SOURCE_OFFSET]),
    )
    assert replay["mqtt_topic"] == topic0 and replay["registry_version"] == registered
    assert replayed["raw"]["payload"] == payload0.decode()
    ledger.close()
    dead_tail.close()
    raw_tail.close()


def test_a_status_dead_letter_of_an_older_processor_replays_into_events(migrated, stack_env) -> None:
    """Before the events existed, the processor dead-lettered status messages of unknown controllers: replayed,
    such a dead letter gives its events (through the sink's event write path), once."""
    mac = "e5" + uuid.uuid4().hex[:10]
    at = datetime.now(UTC).replace(microsecond=250000) - timedelta(minutes=3)
    topic = f"stat/f2-{mac}/access-control-mode/J2/door-sensors"
    payload = json.dumps({"timestamp": device_time(micros(at)), "door-sensor-1": True, "door-sensor-2": False})
    source_offset = 10**12 + uuid.uuid4().int % 10**9  # a raw offset no record of this session has
    producer = Producer(migrated.kafka_config())
    producer.produce(
        topics.DEADLETTER,
        key=mac.encode(),
        value=payload.encode(),
        headers=[
            (topics.H_REASON, b"unknown-controller"),
            (topics.H_DETAIL, f"controller {mac} is not in the registry; register it first".encode()),
            (topics.H_SOURCE_TOPIC, topics.RAW.encode()),
            (topics.H_SOURCE_PARTITION, b"0"),
            (topics.H_SOURCE_OFFSET, str(source_offset).encode()),
            (topics.H_MQTT_TOPIC, topic.encode()),
        ],
    )
    assert producer.flush(30) == 0

    def replay() -> dict[str, object]:
        done = f2(stack_env, "deadletters", "replay", "--since", "1h", "--controller", mac, "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    first = replay()
    assert (first["replayed"], first["readings_stored"], first["events_stored"]) == (1, 0, 2)
    with psycopg.connect(migrated.timeseries_dsn) as ts:

        def events() -> list[tuple[object, ...]]:
            return ts.execute(
                'SELECT "time", connector, component, kind, state, controller_id, mqtt_topic FROM device_events '
                "WHERE controller_mac = %s ORDER BY component",
                (mac,),
            ).fetchall()

        expected = [
            (at, 2, "door-sensor-1", "state", "open", None, topic),
            (at, 2, "door-sensor-2", "state", "closed", None, topic),
        ]
        try:
            assert events() == expected
            second = replay()
            assert (second["replayed"], second["already_replayed"], second["events_stored"]) == (0, 1, 0)
            assert events() == expected
        finally:
            for table in ("device_events", "component_states", "deadletter_replays"):
                ts.execute(f"DELETE FROM {table} WHERE controller_mac = %s", (mac,))  # noqa: S608
            ts.commit()


def test_what_still_fails_keeps_its_current_reason_until_it_decodes(migrated, stack_env, late_controller) -> None:
    """A frame dead-lettered `unknown-controller`: replayed while the controller is unknown it stays
    `still-failing` (unknown-controller); once the controller is registered without that sensor, with the new
    reason `unwired-position`; once the sensor is wired, it is replayed and its readings stored."""
    mac = late_controller
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    (sent,) = [f for f in frames(mac, at, 1) if f[2] == 2]
    topic, payload, _, _ = sent
    source_offset = 10**12 + uuid.uuid4().int % 10**9  # a raw offset no record of this session has
    producer = Producer(migrated.kafka_config())
    producer.produce(
        topics.DEADLETTER,
        key=mac.encode(),
        value=payload,
        headers=[
            (topics.H_REASON, b"unknown-controller"),
            (topics.H_DETAIL, b"controller not in the registry"),
            (topics.H_SOURCE_TOPIC, topics.RAW.encode()),
            (topics.H_SOURCE_PARTITION, b"0"),
            (topics.H_SOURCE_OFFSET, str(source_offset).encode()),
            (topics.H_MQTT_TOPIC, topic.encode()),
        ],
    )
    assert producer.flush(30) == 0

    def replay() -> dict[str, object]:
        done = f2(stack_env, "deadletters", "replay", "--since", "1h", "--controller", mac, "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def row() -> tuple[object, ...] | None:
        with psycopg.connect(migrated.timeseries_dsn) as ts:
            return ts.execute(
                "SELECT outcome, reason, original_reason, attempts, readings FROM deadletter_replays "
                "WHERE source_topic = 'f2.raw' AND source_partition = 0 AND source_offset = %s",
                (source_offset,),
            ).fetchone()

    def register(positions: tuple[int, ...]) -> None:
        with psycopg.connect(migrated.registry_dsn) as reg, reg.transaction():
            seed_fleet(
                reg, [(f"Late {mac}", mac)], [WiringSpec(mac, 1, p, f"Late Env {p} {mac}", "ENV-S1") for p in positions]
            )

    first = replay()
    assert (first["replayed"], first["still_failing"]) == (0, {"unknown-controller": 1})
    assert row() == ("still-failing", "unknown-controller", "unknown-controller", 1, 0)
    register((1,))
    second = replay()
    assert (second["replayed"], second["still_failing"]) == (0, {"unwired-position": 1})
    (failure,) = second["failure_samples"]  # type: ignore[misc]
    assert (failure["original_reason"], failure["reason"]) == ("unknown-controller", "unwired-position")
    assert row() == ("still-failing", "unwired-position", "unknown-controller", 2, 0)
    listed = json.loads(f2(stack_env, "deadletters", "list", "--since", "1h", "--controller", mac, "--json").stdout)
    assert [g["status"] for g in listed] == [{"still-failing": 1}]
    register((1, 2))
    third = replay()
    assert (third["replayed"], third["readings_stored"], third["still_failing"]) == (1, 3, {})
    assert row() == ("replayed", None, "unknown-controller", 3, 3)
    with psycopg.connect(migrated.registry_dsn) as reg:
        ids = device_ids(reg, [Wiring(mac, 1, 2, f"Late Env 2 {mac}", "ENV-S1")])
        points = {
            label: i for (_, label), i in datapoint_ids(reg, {"ENV-S1": [p.label for p in ENV.datapoints]}).items()
        }
    device = ids[(mac, f"Late Env 2 {mac}")]
    assert stored_rows(migrated.timeseries_dsn, [device], at) == expected_rows([sent], {2: device}, points)
    assert replay()["replayed"] == 0


def test_sink_batches_older_than_the_decoded_topic_are_dropped(migrated, code_location, instance) -> None:
    old_id, new_id = uuid.uuid4().int >> 65, uuid.uuid4().int >> 65
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as ts:
        for batch_id, age in ((old_id, timedelta(days=10)), (new_id, timedelta(days=2))):
            ts.execute(
                "INSERT INTO sink_batches VALUES (now() - %s, %s, '{f2.decoded}', '{0}', '{1}', '{2}', 2, 0)",
                (age, batch_id),
            )
        run = code_location.resolve_job_def("sink_batches_retention_job").execute_in_process(instance=instance)
        assert run.success and run.output_for_node("drop_old_sink_batches") >= 1
        kept = {
            r[0] for r in ts.execute("SELECT batch_id FROM sink_batches WHERE batch_id = ANY(%s)", ([old_id, new_id],))
        }
        assert kept == {new_id}
        ts.execute("DELETE FROM sink_batches WHERE batch_id = %s", (new_id,))
