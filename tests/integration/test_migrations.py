"""Acceptance of the schema migrations (`f2 db migrate`, f2_platform.db.migrations) on the real PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from f2_platform.db.migrations import migrate
from f2_platform.errors import MigrationError
from streaming.settings import ConnectionSettings

pytestmark = pytest.mark.integration

F2 = str(Path(sys.executable).parent / "f2")
REPO = Path(__file__).resolve().parents[2]
SQL = REPO / "sql"


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def files_on_disk(target: str) -> list[Path]:
    return sorted((SQL / target).glob("*.sql"))


@pytest.fixture()
def fresh_dsn(connections: ConnectionSettings) -> Iterator[str]:
    """A new, empty database on the session stack, dropped afterwards."""
    name = f"f2_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = with_database(connections.timeseries_dsn, "postgres")
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(connections.timeseries_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def f2_migrate(stack_env: dict[str, str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**stack_env, "F2_REGISTRY_DSN": dsn, "F2_TIMESERIES_DSN": dsn}
    return subprocess.run([F2, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False)


def ledger(dsn: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        rows = conn.execute("SELECT target, version, name FROM f2_schema_migrations ORDER BY target, version")
        return [(str(t), int(v), str(n)) for t, v, n in rows.fetchall()]


def table_exists(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM pg_class WHERE relname = %s", (name,)).fetchone()
        return bool(row and row[0])


def test_migrate_applies_every_file_once(stack_env: dict[str, str], fresh_dsn: str) -> None:
    registry, timeseries = files_on_disk("registry"), files_on_disk("timeseries")
    assert registry and timeseries, "sql/registry and sql/timeseries must hold migrations"

    first = f2_migrate(stack_env, fresh_dsn)
    assert first.returncode == 0, first.stdout + first.stderr
    applied = [line for line in first.stdout.splitlines() if line.startswith("applied ")]
    expected = [f"applied registry/{p.name}" for p in registry]
    expected += [f"applied timeseries/{p.name}" for p in timeseries]
    assert applied == expected
    assert f"{len(expected)} migration(s) applied" in first.stdout

    second = f2_migrate(stack_env, fresh_dsn)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to apply" in second.stdout
    assert not [line for line in second.stdout.splitlines() if line.startswith("applied ")]

    # One ledger row per file: NNNN_name.sql -> (target, NNNN, name)
    expected_rows = sorted(
        [("registry", int(p.name[:4]), p.stem[5:]) for p in registry]
        + [("timeseries", int(p.name[:4]), p.stem[5:]) for p in timeseries]
    )
    assert ledger(fresh_dsn) == expected_rows

    # What the files create is really there.
    assert table_exists(fresh_dsn, "decoded_data")
    with psycopg.connect(fresh_dsn, connect_timeout=10) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'VtDevice'"
            ).fetchall()
        }
    assert {"devicetypes", "devicetemplates", "devices", "connectors", "pins", "datapointicons", "datapoints"} <= tables


@pytest.fixture()
def sql_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "sql"
    shutil.copytree(SQL, copy)
    return copy


def test_failing_migration_rolls_back_and_names_itself(fresh_dsn: str, sql_copy: Path) -> None:
    (sql_copy / "registry" / "0099_broken.sql").write_text(
        "CREATE TABLE f2_should_not_exist(x int);\nSELECT * FROM no_such_table;\n"
    )
    with pytest.raises(MigrationError) as excinfo:
        migrate(fresh_dsn, "registry", sql_dir=sql_copy)
    assert "registry/0099_broken.sql" in str(excinfo.value)
    assert "no_such_table" in str(excinfo.value)  # the database's own complaint is passed on

    assert not table_exists(fresh_dsn, "f2_should_not_exist")
    versions = [v for t, v, _ in ledger(fresh_dsn) if t == "registry"]
    assert 99 not in versions
    # The good migrations before it stay applied.
    assert versions == [int(p.name[:4]) for p in files_on_disk("registry")]

    # Once fixed, the same migration applies.
    (sql_copy / "registry" / "0099_broken.sql").write_text("CREATE TABLE f2_should_not_exist(x int);\n")
    assert [m.label for m in migrate(fresh_dsn, "registry", sql_dir=sql_copy)] == ["registry/0099_broken.sql"]
    assert table_exists(fresh_dsn, "f2_should_not_exist")


def test_edited_applied_migration_is_refused(fresh_dsn: str, sql_copy: Path) -> None:
    migrate(fresh_dsn, "registry")
    first = sorted((sql_copy / "registry").glob("*.sql"))[0]
    content = bytearray(first.read_bytes())
    content[-1:] = b" " if content[-1:] != b" " else b"\n"  # one byte changed, same meaning
    first.write_bytes(bytes(content))
    # A new migration after the edited one must not be applied either.
    (sql_copy / "registry" / "0098_after_edit.sql").write_text("CREATE TABLE f2_after_edit(x int);\n")

    with pytest.raises(MigrationError) as excinfo:
        migrate(fresh_dsn, "registry", sql_dir=sql_copy)
    assert "append-only" in str(excinfo.value)
    assert f"registry/{first.name}" in str(excinfo.value)
    assert not table_exists(fresh_dsn, "f2_after_edit")
    assert 98 not in [v for t, v, _ in ledger(fresh_dsn) if t == "registry"]


def test_decoded_data_is_a_hypertable_keyed_by_reading(pg: psycopg.Connection) -> None:
    hypertables = pg.execute(
        "SELECT hypertable_schema, hypertable_name FROM timescaledb_information.hypertables "
        "WHERE hypertable_name = 'decoded_data'"
    ).fetchall()
    assert hypertables == [("public", "decoded_data")]
    dimensions = pg.execute(
        "SELECT column_name FROM timescaledb_information.dimensions WHERE hypertable_name = 'decoded_data'"
    ).fetchall()
    assert dimensions == [("timestamp",)]

    key = pg.execute(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = 'public.decoded_data'::regclass AND i.indisprimary ORDER BY k.ord"
    ).fetchall()
    assert [r[0] for r in key] == ["timestamp", "device_id", "datapoint_id"]

    ts = datetime(2023, 5, 25, 15, 13, 10, 543400, tzinfo=UTC)
    insert = "INSERT INTO decoded_data (timestamp, device_id, datapoint_id, value) VALUES (%s, %s, %s, %s)"
    with pg.transaction(force_rollback=True):
        pg.execute(insert, (ts, 990001, 990101, 21.5))
        # Another datapoint, device or instant is another reading.
        pg.execute(insert, (ts, 990001, 990102, 40.0))
        pg.execute(insert, (ts, 990002, 990101, 21.5))
        with pytest.raises(psycopg.errors.UniqueViolation), pg.transaction():
            pg.execute(insert, (ts, 990001, 990101, 22.0))
        count = pg.execute("SELECT count(*) FROM decoded_data WHERE device_id IN (990001, 990002)").fetchone()
        assert count == (3,)
