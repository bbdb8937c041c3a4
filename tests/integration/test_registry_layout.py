"""The registry's layout on a real PostgreSQL: a fresh install has exactly the reference deployment's columns;
an install made by the platform's first registry migrations is brought forward; the schema is a setting; keys
that duplicate rows prevent wait for `f2 db validate`. Each test works in a database of its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from f2_platform.db.migrations import migrate
from f2_platform.registry.seed import seed_sample
from streaming.decoding.topology_store import RegistryStore
from streaming.settings import ConnectionSettings
from tests import reference_deployment as ref
from tests.integration.test_migrations import ledger, with_database
from tests.realtime import F2
from tests.sample_registry import TOPOLOGY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIRST_REGISTRY_MIGRATIONS = Path(__file__).parent / "registry_v1"


@pytest.fixture()
def database(connections: ConnectionSettings) -> Iterator[str]:
    name = f"f2_layout_{uuid.uuid4().hex[:10]}"
    admin = with_database(connections.timeseries_dsn, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(connections.timeseries_dsn, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def columns(dsn: str, schema: str = "VtDevice") -> dict[str, object]:
    with psycopg.connect(dsn) as conn:
        return {table: content["columns"] for table, content in ref.dump(conn, schema).items()}  # type: ignore[index]


def f2(stack_env: dict[str, str], dsn: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**stack_env, "F2_REGISTRY_DSN": dsn, "F2_TIMESERIES_DSN": dsn, **extra}
    return subprocess.run([F2, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_fresh_registry_has_exactly_the_reference_columns(database: str, connections: ConnectionSettings) -> None:
    migrate(database, "registry")
    # The same database built from the reference DDL (written in the tests, from docs/domain.md §7).
    other = with_database(database, "postgres")
    name = f"f2_layout_ref_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        reference = with_database(database, name)
        with psycopg.connect(reference) as conn, conn.transaction():
            conn.execute(ref.REFERENCE_DDL.format(schema="VtDevice"))
        assert columns(database) == columns(reference)
    finally:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    # The platform's own columns stand beside them.
    with psycopg.connect(database) as conn:
        added = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'VtDevice' "
            "AND column_name IN ('frame_check', 'expected_interval_s', 'min_value', 'max_value') ORDER BY 1, 2"
        ).fetchall()
    assert added == [
        ("datapoints", "max_value"),
        ("datapoints", "min_value"),
        ("devicetemplates", "expected_interval_s"),
        ("devicetemplates", "frame_check"),
    ]


def old_install(dsn: str, tmp_path: Path) -> None:
    """A registry made by the platform's first four registry migrations, with rows in their column types."""
    old = tmp_path / "sql"
    (old / "registry").mkdir(parents=True)
    for path in FIRST_REGISTRY_MIGRATIONS.glob("*.sql"):
        shutil.copy(path, old / "registry" / path.name)
    migrate(dsn, "registry", sql_dir=old)
    with psycopg.connect(dsn) as conn, conn.transaction():
        conn.execute(
            """
INSERT INTO "VtDevice".devicetypes (devicetypeid, typename) VALUES (1, 'Sensor');
INSERT INTO "VtDevice".devicetemplates (devicetemplateid, name, devicetypeid) VALUES (1, 'ENV-S1', 1);
INSERT INTO "VtDevice".devices (deviceid, devicename, devicetemplateid, macaddress, claimingcode, uuid)
VALUES (1, 'C1', 1, 'aabbccddee01', 'claim', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, 'S1', 1, NULL, NULL, NULL);
INSERT INTO "VtDevice".connectors (connectorid, controllerid, connectornumber) VALUES (1, 1, 1);
INSERT INTO "VtDevice".pins (pinid, connectorid, position, deviceid) VALUES (1, 1, 1, 2);
INSERT INTO "VtDevice".datapoints (datapointid, devicetemplateid, label, dataencoding, "offset", length,
    realtimechart, historicalchart, wholenumber, dataformat, append)
VALUES (1, 1, 'Temperature', 'Int16', 3, 2, true, true, false, '7', ' °C'),
       (2, 1, 'Door', 'Bool', 0, 0, false, false, true, NULL, NULL);
"""
        )


def test_an_install_of_the_first_migrations_is_brought_forward(database: str, tmp_path: Path) -> None:
    old_install(database, tmp_path)
    first = [n for _, _, n in ledger(database)]
    applied = [m.label for m in migrate(database, "registry")]
    assert applied == ["registry/0005_reference_column_types.sql", "registry/0006_platform_constraints.sql"]
    # 0002 was replaced: the database keeps the first form's record.
    assert [n for _, _, n in ledger(database)] == [*first, "reference_column_types", "platform_constraints"]
    found = columns(database)
    want = _reference_columns(database)
    # connectors.connectortypeid held NULL (the first seed wrote none): it stays nullable, no id is made up.
    assert found["connectors"] != want["connectors"]  # type: ignore[comparison-overlap]
    nullable = [c for c in found["connectors"] if c[0] == "connectortypeid"]  # type: ignore[attr-defined]
    assert nullable == [("connectortypeid", "integer", False, None, "")]
    for table in ("devicetypes", "devicetemplates", "devices", "pins", "datapointicons", "datapoints"):
        assert found[table] == want[table], table
    with psycopg.connect(database) as conn:
        points = conn.execute(
            "SELECT datapointid, realtimechart, historicalchart, wholenumber, dataformat, append, prepend, "
            'datapointiconid FROM "VtDevice".datapoints ORDER BY 1'
        ).fetchall()
        devices = conn.execute('SELECT deviceid, claimingcode, uuid FROM "VtDevice".devices ORDER BY 1').fetchall()
        foreign = dict(
            conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = '\"VtDevice\"'::regnamespace AND contype = 'f'"
            ).fetchall()
        )
    assert points == [(1, "gauge", "line", 0, 7, " °C", "", 0), (2, "", "", 1, 0, "", "", 0)]
    assert devices == [(1, "claim", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), (2, "", None)]
    assert set(foreign) == {
        "connectors_controllerid_fkey",
        "pins_connectorid_fkey",
        "pins_deviceid_fkey",
        "datapoints_devicetemplateid_fkey",
    }
    assert foreign["pins_deviceid_fkey"].endswith("ON DELETE CASCADE")
    assert migrate(database, "registry") == []


def _reference_columns(dsn: str) -> dict[str, object]:
    """The reference DDL's columns, from a schema of that DDL made beside the registry in the same database."""
    with psycopg.connect(dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute(ref.REFERENCE_DDL.format(schema="reference_ddl"))
        return {t: c["columns"] for t, c in ref.dump(conn, "reference_ddl").items()}  # type: ignore[index]


def test_the_registry_schema_is_a_setting(database: str, stack_env: dict[str, str]) -> None:
    result = f2(stack_env, database, "db", "migrate", F2_REGISTRY_SCHEMA="Fleet_B")
    assert result.returncode == 0, result.stdout + result.stderr
    seeded = f2(stack_env, database, "db", "seed-sample", F2_REGISTRY_SCHEMA="Fleet_B")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    with psycopg.connect(database) as conn:
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
        devices = conn.execute('SELECT count(*) FROM "Fleet_B".devices WHERE macaddress IS NOT NULL').fetchone()
        trigger = conn.execute("SELECT pg_get_functiondef('\"Fleet_B\".f2_notify_registry_change'::regproc)").fetchone()
    assert "Fleet_B" in schemas and "VtDevice" not in schemas
    assert devices == (4,)
    assert trigger is not None and '"Fleet_B".f2_registry_version' in trigger[0]
    assert {t for t, _, _ in ledger(database)} == {"registry:Fleet_B", "timeseries"}
    version, topology = RegistryStore(database, schema="Fleet_B").load("aabbccddee01")
    assert version > 0 and topology is not None
    # The sample registry's wiring of this controller (tests/sample_registry.py, readers and strikes included).
    assert set(topology.wired) == {(c, p) for (mac, c, p) in TOPOLOGY if mac == "aabbccddee01"}
    check = f2(stack_env, database, "db", "check", "--json", F2_REGISTRY_SCHEMA="Fleet_B")
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["registry"]["schema"] == "Fleet_B"


def test_a_schema_name_that_is_not_an_identifier_is_refused_before_anything_runs(
    database: str, stack_env: dict[str, str]
) -> None:
    result = f2(stack_env, database, "db", "migrate", F2_REGISTRY_SCHEMA='VtDevice"; DROP SCHEMA public; --')
    assert result.returncode != 0
    assert "F2_REGISTRY_SCHEMA" in result.stderr and "not a plain identifier" in result.stderr
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('f2_schema_migrations')").fetchone() == (None,)
        assert conn.execute("SELECT to_regnamespace('public') IS NOT NULL").fetchone() == (True,)


def test_keys_that_duplicates_prevent_wait_for_validate(database: str, stack_env: dict[str, str]) -> None:
    with psycopg.connect(database) as conn, conn.transaction():
        deployment = ref.build(conn, defects=False)
        duplicate = conn.execute(
            'INSERT INTO "VtDevice".devices (devicename, devicetemplateid, claimingcode, macaddress) '
            "VALUES ('Twin of 1', %s, '', 'aabbccddee01') RETURNING deviceid",
            (deployment.templates["F2 Controller"],),
        ).fetchone()
    assert duplicate is not None
    migrated = f2(stack_env, database, "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "devices_macaddress_key not created" in migrated.stdout
    check = f2(stack_env, database, "db", "check", "--json", "--registry-only")
    report = json.loads(check.stdout)
    assert check.returncode == 1
    assert {r["rule"]: [row["id"] for row in r["rows"]] for r in report["rules"]} == {
        "controller-mac-unique": [duplicate[0]]
    }
    assert {c["name"]: c["state"] for c in report["constraints"]}["devices_macaddress_key"] == "missing"
    refused = f2(stack_env, database, "db", "validate")
    assert refused.returncode == 1 and "devices_macaddress_key: still broken" in refused.stderr
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute('UPDATE "VtDevice".devices SET macaddress = NULL WHERE deviceid = %s', (duplicate[0],))
    validated = f2(stack_env, database, "db", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "devices_macaddress_key: created" in validated.stdout
    # The key is in force now: the seed's ON CONFLICT (macaddress) works, and a second MAC is refused.
    seed_sample(database)
    with pytest.raises(psycopg.errors.UniqueViolation), psycopg.connect(database) as conn:
        conn.execute("UPDATE \"VtDevice\".devices SET macaddress = 'aabbccddee01' WHERE devicename = 'F2 Controller 2'")
