"""Pointing the platform at a registry of the reference deployment, as it is (issue 16): `f2 db check` finds each
defective row by rule and id, `f2 db migrate` succeeds without changing a user's row or column, the pipeline
decodes the healthy devices and dead-letters the defective ones with their reason, the repaired rows decode
the next frames without a restart, and `f2 db validate` then succeeds.

The registry and its readings live in a database of their own on the session's PostgreSQL, so the other tests
keep the platform's sample registry."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from simulator.catalog import TEMPLATES
from simulator.frames import encode_frame, hex_text
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests import reference_deployment as ref
from tests.pipeline import Pipeline, env_without_proxy
from tests.realtime import F2, TopicReader, publish, wait_for

pytestmark = pytest.mark.integration

ENV_VALUES = {"Temperature": 21.5, "Humidity": 48.25, "CO2": 612.0}
POWER_VALUES = {"Voltage": 230.1, "Current": -1.25, "Power": -287.6, "Energy": 1234.567}
PRESSURE_VALUES = {"Pressure": 1013.25, "Probe Temperature": -5.0, "Battery": 87.0}


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@pytest.fixture(scope="module")
def adopted(connections: ConnectionSettings) -> Iterator[tuple[str, ref.Deployment]]:
    """A database holding the reference deployment's registry (with its defects), dropped afterwards."""
    name = f"f2_adopt_{uuid.uuid4().hex[:10]}"
    admin = with_database(connections.timeseries_dsn, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_database(connections.timeseries_dsn, name)
    try:
        with psycopg.connect(dsn) as conn, conn.transaction():
            deployment = ref.build(conn)
        yield dsn, deployment
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def f2(stack_env: dict[str, str], dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack_env, "F2_REGISTRY_DSN": dsn, "F2_TIMESERIES_DSN": dsn}
    return subprocess.run([F2, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def snapshot(dsn: str) -> dict[str, object]:
    with psycopg.connect(dsn) as conn:
        return ref.dump(conn)


def violations(report: dict) -> dict[str, list[int]]:
    return {r["rule"]: sorted(row["id"] for row in r["rows"]) for r in report["rules"]}


def device_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def frame_message(topic: str, template: str, values: dict[str, float], at: datetime) -> tuple[str, bytes]:
    frame = encode_frame(values, TEMPLATES[template].datapoints)
    return topic, json.dumps({"timestamp": device_time(at), "data": hex_text(frame)}).encode()


def stored(dsn: str, device_id: int, at: datetime) -> dict[int, float]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            'SELECT datapoint_id, value FROM decoded_data WHERE device_id = %s AND "timestamp" = %s',
            (device_id, at),
        ).fetchall()
    return {int(d): float(v) for d, v in rows}


def expected(deployment: ref.Deployment, template: str, values: dict[str, float]) -> dict[int, float]:
    return {deployment.datapoints[(template, label)]: value for label, value in values.items()}


def registry_version(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute('SELECT version FROM "VtDevice".f2_registry_version').fetchone()
    assert row is not None
    return int(row[0])


def test_the_reference_registry_is_checked_migrated_run_repaired_and_validated(
    adopted: tuple[str, ref.Deployment], connections: ConnectionSettings, stack_env: dict[str, str], tmp_path: Path
) -> None:
    dsn, deployment = adopted
    ids = deployment.devices
    before = snapshot(dsn)

    # 1. check, read-only: each defective row, by rule and id; nothing else (the reference's own habits pass).
    checked = f2(stack_env, dsn, "db", "check", "--json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["exit_code"] == 1 and report["cannot_run"] == []
    assert violations(report) == {
        "controller-mac-format": [ids["F2 Controller 5"]],
        "wired-device-template-exists": [ids["Garage Env"]],
        "datapoint-encoding": [deployment.datapoints[("PM-100", "Energy")]],
    }
    fixes = {r["rule"]: r["rows"][0]["fix"] for r in report["rules"]}
    mac_fix = "UPDATE \"VtDevice\".devices SET macaddress = 'aabbccddee05' WHERE deviceid = %d;"
    assert fixes["controller-mac-format"] == mac_fix % ids["F2 Controller 5"]
    assert snapshot(dsn) == before, "f2 db check wrote to the registry"

    # 2. migrate: succeeds, reports the rows, changes no user row or column; a second run changes nothing.
    migrated = f2(stack_env, dsn, "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "applied registry/0006_platform_constraints.sql" in migrated.stdout
    assert "devices_macaddress_format_check added NOT VALID" in migrated.stdout
    assert "datapoints_dataencoding_check added NOT VALID" in migrated.stdout
    assert "3 row(s) break 3 rule(s)" in migrated.stdout
    assert snapshot(dsn) == before
    again = f2(stack_env, dsn, "db", "migrate")
    assert again.returncode == 0 and "nothing to apply" in again.stdout, again.stdout + again.stderr
    assert snapshot(dsn) == before
    with psycopg.connect(dsn) as conn:
        states = dict(
            conn.execute(
                "SELECT conname, convalidated FROM pg_constraint WHERE connamespace = '\"VtDevice\"'::regnamespace"
            ).fetchall()
        )
        # New writes are checked at once, the old rows stay.
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("UPDATE \"VtDevice\".datapoints SET dataencoding = '' WHERE label = 'Voltage'")
    assert states["devices_macaddress_format_check"] is False and states["datapoints_dataencoding_check"] is False
    assert states["pins_deviceid_fkey"] is True and states["connectors_controllerid_fkey"] is True
    assert "datapoints_datapointiconid_fkey" not in states and "devicetemplates_devicetypeid_fkey" not in states

    # 3. the pipeline on the sample fleet against this registry.
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A version no other registry of the session reaches: the processors share the stack's Redis.
        conn.execute('UPDATE "VtDevice".f2_registry_version SET version = %s', (10**12 + uuid.uuid4().int % 10**9,))
    env = env_without_proxy(stack_env) | {
        "F2_REGISTRY_DSN": dsn,
        "F2_TIMESERIES_DSN": dsn,
        "F2_PROCESSOR_REGISTRY_DSN": with_database(stack_env["F2_PROCESSOR_REGISTRY_DSN"], urlsplit(dsn).path[1:]),
        "F2_SINK_TIMESERIES_DSN": with_database(stack_env["F2_SINK_TIMESERIES_DSN"], urlsplit(dsn).path[1:]),
    }
    pipeline = Pipeline(env, tmp_path / "daemons")
    dead = TopicReader(connections, topics.DEADLETTER)
    pipeline.start()
    try:
        first = datetime(2031, 3, 1, 12, 0, 0, 123456, tzinfo=UTC) + timedelta(seconds=uuid.uuid4().int % 86400)
        healthy = [
            frame_message("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", "ENV-S1", ENV_VALUES, first),
            frame_message("tele/f2-aabbccddee04/sensor-mode/J3/sensor-1", "PS-1", PRESSURE_VALUES, first),
            (
                "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors",
                json.dumps({"timestamp": device_time(first), "door-sensor-1": True, "door-sensor-2": False}).encode(),
            ),
        ]

        def defective(at: datetime) -> list[tuple[str, bytes]]:
            return [
                frame_message("tele/f2-aabbccddee02/sensor-mode/J2/sensor-2", "PM-100", POWER_VALUES, at),
                frame_message("tele/f2-aabbccddee03/sensor-mode/J2/sensor-1", "ENV-S1", ENV_VALUES, at),
                frame_message("tele/f2-aabbccddee05/sensor-mode/J1/sensor-1", "ENV-S1", ENV_VALUES, at),
            ]

        publish(connections, healthy + defective(first))
        wait_for(
            lambda: all(stored(dsn, ids[name], first) for name in ("Living Room Env", "Boiler Pressure", "Main Door")),
            60,
            what="the healthy devices' readings",
        )
        assert stored(dsn, ids["Living Room Env"], first) == pytest.approx(expected(deployment, "ENV-S1", ENV_VALUES))
        assert stored(dsn, ids["Boiler Pressure"], first) == pytest.approx(
            expected(deployment, "PS-1", PRESSURE_VALUES)
        )
        door = deployment.datapoints
        assert stored(dsn, ids["Main Door"], first) == {
            door[("DS-2", "door-sensor-1")]: 1.0,
            door[("DS-2", "door-sensor-2")]: 0.0,
        }

        def letters(at: datetime) -> dict[str, dict[str, str]]:
            stamp = device_time(at).encode()
            return {h[topics.H_MQTT_TOPIC]: h for _, value, h in dead.records if value is not None and stamp in value}

        def three_letters() -> bool:
            dead.poll(1.0)
            return len(letters(first)) == 3

        wait_for(three_letters, 60, what="the defective devices' dead letters")
        found = letters(first)
        power = found["tele/f2-aabbccddee02/sensor-mode/J2/sensor-2"]
        assert power[topics.H_REASON] == "frame-length"
        energy = deployment.datapoints[("PM-100", "Energy")]
        assert f"datapoint 'Energy' (id {energy}) has encoding ''" in power[topics.H_DETAIL]
        garage = found["tele/f2-aabbccddee03/sensor-mode/J2/sensor-1"]
        assert garage[topics.H_REASON] == "unwired-position"
        assert f"'Garage Env' (id {ids['Garage Env']}) has template id 999" in garage[topics.H_DETAIL]
        attic = found["tele/f2-aabbccddee05/sensor-mode/J1/sensor-1"]
        assert attic[topics.H_REASON] == "unknown-controller"
        for name in ("Kitchen Power", "Garage Env", "Attic Env"):
            assert stored(dsn, ids[name], first) == {}, name

        # 4. repair the rows as f2 db check said; the next frames decode without a restart.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(fixes["controller-mac-format"])
            conn.execute("UPDATE \"VtDevice\".datapoints SET dataencoding = 'Uint32' WHERE datapointid = %s", (energy,))
            conn.execute(
                'UPDATE "VtDevice".devices SET devicetemplateid = %s WHERE deviceid = %s',
                (deployment.templates["ENV-S1"], ids["Garage Env"]),
            )
        repaired = registry_version(dsn)
        processor = pipeline.get("processor-0")
        wait_for(
            lambda: processor.healthz()[1].get("registry_version", 0) >= repaired,
            30,
            what="the processor to hear of the repair",
        )
        second = first + timedelta(seconds=30)
        publish(connections, defective(second))
        wait_for(
            lambda: all(stored(dsn, ids[n], second) for n in ("Kitchen Power", "Garage Env", "Attic Env")),
            60,
            what="the repaired devices' readings",
        )
        assert stored(dsn, ids["Kitchen Power"], second) == pytest.approx(expected(deployment, "PM-100", POWER_VALUES))
        for name in ("Garage Env", "Attic Env"):
            assert stored(dsn, ids[name], second) == pytest.approx(expected(deployment, "ENV-S1", ENV_VALUES)), name
        dead.poll(2.0)
        assert letters(second) == {}
        assert pipeline.get("processor-0").alive(), "the processor restarted"
    finally:
        dead.close()
        pipeline.stop()

    # 5. validate, once repaired; the registry is clean.
    validated = f2(stack_env, dsn, "db", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "devices_macaddress_format_check: validated" in validated.stdout
    assert "datapoints_dataencoding_check: validated" in validated.stdout
    clean = f2(stack_env, dsn, "db", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with psycopg.connect(dsn) as conn:
        left = conn.execute(
            "SELECT conname FROM pg_constraint WHERE connamespace = '\"VtDevice\"'::regnamespace AND NOT convalidated"
        ).fetchall()
    assert left == []
