"""Access and alarm events through the running pipeline (issue 17, item 1): MQTT -> bridge -> processor ->
f2.events -> sink -> device_events / component_states / controller_presence, beside the readings.

Each test publishes for controller MACs of its own (random, never the sample's), registers in the registry only
what it needs, and removes its rows afterwards but its readings (see `cleanup`). Expected values are written out
here from docs/domain.md ("Events"): states per component, fingerprints computed from the stack's secret file
with hmac, registry ids read from the registry, previous states from a reference over the published events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from f2_platform.registry.sample import TEMPLATES, WiringSpec
from f2_platform.registry.seed import seed_fleet
from f2_platform.stack.manager import Stack
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.realtime import TopicReader, publish, wait_for

pytestmark = pytest.mark.integration

ENV_FRAME = "01 03 06 09 30 11 9E 02 64 05 B1"  # ENV-S1: Temperature 23.52, Humidity 45.10, CO2 612
ENV_VALUES = {"Temperature": 23.52, "Humidity": 45.1, "CO2": 612.0}


def device_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def new_mac() -> str:
    return "e8" + uuid.uuid4().hex[:10]


@pytest.fixture()
def cleanup(migrated: ConnectionSettings) -> Iterator[dict[str, list]]:
    """Rows to remove afterwards: "macs" (events, states, presence, registry), "devices" (latest values)."""
    made: dict[str, list] = {"macs": [], "devices": []}
    yield made
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as owner:
        for table in ("device_events", "component_states", "controller_presence"):
            owner.execute(f"DELETE FROM {table} WHERE controller_mac = ANY(%s)", (made["macs"],))  # noqa: S608
        # Readings stay in decoded_data (device ids of this test's own, in the session's database): a DELETE
        # there fails on a full-edition server once a chunk is compressed. latest_values is a plain table.
        owner.execute("DELETE FROM latest_values WHERE device_id = ANY(%s)", (made["devices"],))
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as reg:
        reg.execute('DELETE FROM "VtDevice".devices WHERE macaddress = ANY(%s)', (made["macs"],))
        reg.execute('DELETE FROM "VtDevice".devices WHERE deviceid = ANY(%s)', (made["devices"],))


def register(conn: ConnectionSettings, mac: str, cleanup: dict[str, list]) -> dict[str, int]:
    """A controller of this test: a DS-2 door pair at J2 and an ENV-S1 at J1; device name -> id, and the
    controller's id under "controller"."""
    templates = [t for t in TEMPLATES if t.name in ("DS-2", "ENV-S1", "F2 Controller")]
    wiring = [WiringSpec(mac, 2, 1, f"Door {mac}", "DS-2"), WiringSpec(mac, 1, 1, f"Env {mac}", "ENV-S1")]
    with psycopg.connect(conn.registry_dsn) as reg, reg.transaction():
        ids = seed_fleet(reg, [(f"Controller {mac}", mac)], wiring, templates)
        controller = reg.execute('SELECT deviceid FROM "VtDevice".devices WHERE macaddress = %s', (mac,)).fetchone()
    cleanup["macs"].append(mac)
    cleanup["devices"] += list(ids.values())
    assert controller is not None
    return {"door": ids[(mac, 2, 1)], "env": ids[(mac, 1, 1)], "controller": int(controller[0])}


def events_of(dsn: str, mac: str) -> list[tuple]:
    with psycopg.connect(dsn) as db:
        return db.execute(
            'SELECT "time", connector, component, kind, controller_id, device_id, state, previous_state, '
            "previous_duration_s, credential_fingerprint, credential_key_id, credential_length, indicator_hex, "
            'mqtt_topic FROM device_events WHERE controller_mac = %s ORDER BY "time", connector, component, kind',
            (mac,),
        ).fetchall()


def metric(pipeline, daemon: str, name: str, **labels: str) -> float:
    text = pipeline.get(daemon).metrics()
    assert text is not None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def stack_secret(stack: Stack) -> bytes:
    # As `f2 stack up` generated it: read from its file, not through the platform's settings.
    return (stack.layout.secrets_dir / "credential-secret").read_text().strip().encode()


def test_every_status_and_reader_message_of_an_unknown_controller_is_kept_as_events(
    migrated: ConnectionSettings, stack: Stack, pipeline, cleanup: dict[str, list]
) -> None:
    mac = new_mac()
    cleanup["macs"].append(mac)
    base = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
    at = [base + timedelta(seconds=s, microseconds=123) for s in range(10)]
    prefix = f"stat/f2-{mac}"
    reader = f"tele/f2-{mac}/access-control-mode/J1/reader-1"
    token = f"QR-{uuid.uuid4().hex}".encode()
    indicator = bytes([0x02, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x03])
    messages = [
        (f"{prefix}/access-control-mode/J2/door-sensors", {"door-sensor-1": True, "door-sensor-2": False}),
        (f"{prefix}/access-control-mode/J2/exit-buttons", {"exit-button-1": True}),
        (f"{prefix}/alarm-mode/J3/motion-sensor-2", {"status": True}),
        (f"{prefix}/access-control-mode/J1/strike-1", {"status": False}),
        (f"{prefix}/alarm-mode/J4/siren-2", {"status": True}),
        (reader, {"data": repr(token)}),
        (reader, {"data": repr(indicator)}),
        # Dead letters: a status field that is not a boolean, a reader payload the bridge cannot read.
        (f"{prefix}/access-control-mode/J2/door-sensors", {"door-sensor-1": 1}),
        (reader, {"data": f"not a literal {token.decode()}"}),
    ]
    payloads = [
        (topic, json.dumps({"timestamp": device_time(at[i]), **body}).encode())
        for i, (topic, body) in enumerate(messages)
    ]
    dead = TopicReader(migrated, topics.DEADLETTER)
    unregistered_before = metric(pipeline, "processor-0", "f2_events_unregistered_total", kind="state")
    publish(migrated, payloads)

    fingerprint = hmac.new(stack_secret(stack), token, hashlib.sha256).hexdigest()
    state = "state"
    expected = [
        (at[0], 2, "door-sensor-1", state, None, None, "open", None, None, None, None, None, None, messages[0][0]),
        (at[0], 2, "door-sensor-2", state, None, None, "closed", None, None, None, None, None, None, messages[0][0]),
        (at[1], 2, "exit-button-1", state, None, None, "pressed", None, None, None, None, None, None, messages[1][0]),
        (
            at[2],
            3,
            "motion-sensor-2",
            state,
            None,
            None,
            "detected",
            None,
            None,
            None,
            None,
            None,
            None,
            messages[2][0],
        ),
        (at[3], 1, "strike-1", state, None, None, "unpowered", None, None, None, None, None, None, messages[3][0]),
        (at[4], 4, "siren-2", state, None, None, "powered", None, None, None, None, None, None, messages[4][0]),
        (at[5], 1, "reader-1", "access", None, None, None, None, None, fingerprint, "k1", len(token), None, reader),
        (
            at[6],
            1,
            "reader-1",
            "indicator",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            "02 02 01 00 00 00 03 03",
            reader,
        ),
    ]
    wait_for(lambda: len(events_of(migrated.timeseries_dsn, mac)) >= len(expected), 60, what="the events")

    def both_dead_letters() -> bool:
        dead.poll(0.5)
        return len([r for r in dead.records if r[0] == mac.encode()]) >= 2

    wait_for(both_dead_letters, 60, what="the two dead letters")
    time.sleep(2)  # anything more (a duplicate, an event of a dead-lettered message) would arrive meanwhile
    assert events_of(migrated.timeseries_dsn, mac) == expected
    dead.poll(1)
    reasons = sorted((h[topics.H_MQTT_TOPIC], h[topics.H_REASON]) for k, _, h in dead.records if k == mac.encode())
    assert reasons == [(messages[7][0], "malformed-payload"), (reader, "malformed-payload")]
    assert any("the bridge could not read" in h[topics.H_DETAIL] for k, _, h in dead.records if k == mac.encode())
    for _, value, headers in dead.records:
        assert token not in (value or b"") + json.dumps(headers).encode()
    dead.close()
    assert metric(pipeline, "processor-0", "f2_events_unregistered_total", kind="state") - unregistered_before == 6
    # The current state of every stateful component; readers have none.
    with psycopg.connect(migrated.timeseries_dsn) as db:
        states = db.execute(
            "SELECT connector, component, state, since, last_event_at, controller_id, device_id "
            "FROM component_states WHERE controller_mac = %s ORDER BY 1, 2",
            (mac,),
        ).fetchall()
    assert states == sorted((e[1], e[2], e[6], e[0], e[0], None, None) for e in expected if e[3] == state)


def test_registered_components_carry_their_registry_ids_and_keep_their_readings(
    migrated: ConnectionSettings, pipeline, cleanup: dict[str, list]
) -> None:
    mac = new_mac()
    ids = register(migrated, mac, cleanup)
    at = datetime(2025, 7, 2, 9, 0, tzinfo=UTC)
    door = f"stat/f2-{mac}/access-control-mode/J2/door-sensors"
    body = {"timestamp": device_time(at), "door-sensor-1": True, "door-sensor-2": False}
    frame = {"timestamp": device_time(at), "data": ENV_FRAME}
    publish(
        migrated,
        [(door, json.dumps(body).encode()), (f"tele/f2-{mac}/sensor-mode/J1/sensor-1", json.dumps(frame).encode())],
    )
    wait_for(lambda: len(events_of(migrated.timeseries_dsn, mac)) >= 2, 60, what="the door events")
    events = [(e[2], e[4], e[5], e[6]) for e in events_of(migrated.timeseries_dsn, mac)]
    assert events == [
        ("door-sensor-1", ids["controller"], ids["door"], "open"),
        ("door-sensor-2", ids["controller"], ids["door"], "closed"),
    ]
    with psycopg.connect(migrated.registry_dsn) as reg:
        labels = dict(
            reg.execute(
                'SELECT dp.label, dp.datapointid FROM "VtDevice".datapoints dp JOIN "VtDevice".devicetemplates t '
                "ON t.devicetemplateid = dp.devicetemplateid WHERE t.name IN ('DS-2', 'ENV-S1')"
            ).fetchall()
        )
        longest = reg.execute(
            'SELECT max(t.expected_interval_s) FROM "VtDevice".devices d JOIN "VtDevice".devicetemplates t '
            "ON t.devicetemplateid = d.devicetemplateid WHERE d.deviceid = ANY(%s)",
            ([ids["door"], ids["env"]],),
        ).fetchone()[0]

    def readings() -> dict[tuple[int, int], float]:
        with psycopg.connect(migrated.timeseries_dsn) as db:
            rows = db.execute(
                'SELECT device_id, datapoint_id, value FROM decoded_data WHERE "timestamp" = %s '
                "AND device_id = ANY(%s)",
                (at, [ids["door"], ids["env"]]),
            ).fetchall()
        return {(d, p): v for d, p, v in rows}

    wait_for(lambda: len(readings()) >= 5, 60, what="the readings")
    expected = {(ids["door"], labels["door-sensor-1"]): 1.0, (ids["door"], labels["door-sensor-2"]): 0.0}
    expected |= {(ids["env"], labels[label]): value for label, value in ENV_VALUES.items()}
    got = readings()
    assert got.keys() == expected.keys() and all(abs(got[k] - v) < 1e-9 for k, v in expected.items())

    # Presence: heard, with the silence the registry gives (the longest expected interval, times 3).
    def presence() -> tuple | None:
        with psycopg.connect(migrated.timeseries_dsn) as db:
            return db.execute(
                "SELECT state, controller_id, silence_after_s FROM controller_presence WHERE controller_mac = %s",
                (mac,),
            ).fetchone()

    wait_for(lambda: presence() is not None, 30, what="the controller's presence")
    assert presence() == ("online", ids["controller"], longest * 3.0)


def test_a_duplicate_and_a_late_event_through_the_pipeline(
    migrated: ConnectionSettings, pipeline, cleanup: dict[str, list]
) -> None:
    mac = new_mac()
    cleanup["macs"].append(mac)
    topic = f"stat/f2-{mac}/access-control-mode/J1/exit-buttons"
    t = [datetime(2025, 7, 3, 9, 0, tzinfo=UTC) + timedelta(seconds=s) for s in (0, 5, 9, 30)]

    def message(at: datetime, pressed: bool) -> tuple[str, bytes]:
        return topic, json.dumps({"timestamp": device_time(at), "exit-button-1": pressed}).encode()

    first = [message(t[0], False), message(t[2], False), message(t[3], True), message(t[3], True)]
    publish(migrated, first)  # the last one twice (the device repeated it)
    wait_for(lambda: len(events_of(migrated.timeseries_dsn, mac)) >= 3, 60, what="the first events")
    publish(migrated, [message(t[1], True)])  # late: pressed at t1, between the two releases
    wait_for(lambda: len(events_of(migrated.timeseries_dsn, mac)) >= 4, 60, what="the late event")
    time.sleep(1)
    got = [(e[0], e[6], e[7], e[8]) for e in events_of(migrated.timeseries_dsn, mac)]
    # released t0 | pressed t1 | released t2 | pressed t3: each follows the run before it.
    assert got == [
        (t[0], "released", None, None),
        (t[1], "pressed", "released", 5.0),
        (t[2], "released", "pressed", 4.0),
        (t[3], "pressed", "released", 21.0),
    ]
    with psycopg.connect(migrated.timeseries_dsn) as db:
        row = db.execute(
            "SELECT state, since, last_event_at FROM component_states WHERE controller_mac = %s", (mac,)
        ).fetchone()
    assert row == ("pressed", t[3], t[3])


@pytest.mark.slow
def test_sink_sigkilled_mid_stream_stores_every_event_and_reading_exactly_once(
    migrated: ConnectionSettings, pipeline, cleanup: dict[str, list]
) -> None:
    mac = new_mac()
    ids = register(migrated, mac, cleanup)
    base = datetime(2025, 7, 4, 9, 0, tzinfo=UTC)
    door = f"stat/f2-{mac}/access-control-mode/J2/door-sensors"
    sensor = f"tele/f2-{mac}/sensor-mode/J1/sensor-1"
    count = 1500
    published_events = [(base + timedelta(seconds=i), "open" if i % 3 else "closed") for i in range(count)]
    payloads = []
    for at, st in published_events:
        payloads.append((door, json.dumps({"timestamp": device_time(at), "door-sensor-1": st == "open"}).encode()))
        payloads.append((sensor, json.dumps({"timestamp": device_time(at), "data": ENV_FRAME}).encode()))
    chunks = [payloads[i : i + 200] for i in range(0, len(payloads), 200)]
    sent = threading.Event()
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for n, chunk in enumerate(chunks):
                publish(migrated, chunk)
                if n == 4:
                    sent.set()
                time.sleep(0.3)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            sent.set()

    thread = threading.Thread(target=publisher)
    thread.start()
    assert sent.wait(120)
    sink = pipeline.get("sink-0")
    sink.signal(signal.SIGKILL)
    assert sink.proc is not None
    sink.proc.wait(10)
    killed_while_publishing = thread.is_alive()
    time.sleep(1.0)
    pipeline.restart("sink-0")
    thread.join(300)
    assert not errors, errors
    assert killed_while_publishing, "the publisher finished before the kill: the test did not test a kill"

    def counts() -> tuple[int, int]:
        with psycopg.connect(migrated.timeseries_dsn) as db:
            events = db.execute(
                "SELECT count(*) FROM device_events WHERE controller_mac = %s AND component = 'door-sensor-1'",
                (mac,),
            ).fetchone()[0]
            readings = db.execute(
                "SELECT count(*) FROM decoded_data WHERE device_id = ANY(%s)", ([ids["door"], ids["env"]],)
            ).fetchone()[0]
        return events, readings

    # Each door message gives a reading (door-sensor-1) and an event; each frame three readings.
    wait_for(lambda: counts() == (count, count * 4), 180, what="every event and reading")
    time.sleep(2)
    assert counts() == (count, count * 4)
    rows = events_of(migrated.timeseries_dsn, mac)
    assert [(e[0], e[6]) for e in rows] == published_events
    run_start = base
    for i, e in enumerate(rows[1:], 1):
        assert e[7] == published_events[i - 1][1]
        assert abs(e[8] - (e[0] - run_start).total_seconds()) < 1e-6
        if published_events[i][1] != published_events[i - 1][1]:
            run_start = e[0]
