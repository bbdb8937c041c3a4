"""F2_TEST_TIMESERIES_DSN's path (tests/timeseries_server.py) against a second PostgreSQL+TimescaleDB server
started here (the stack's Postgres class on a free port): a database and login roles of the session's own are
made there, the migrations and grants apply, each login role has exactly its platform role's rights, and all of
it is gone afterwards while the platform's roles stay."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from f2_platform.db.migrations import apply_grants, migrate
from f2_platform.registry.seed import seed_sample
from f2_platform.settings import StackSettings
from f2_platform.stack.hermetic import make_state_dir
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.ports import free_port
from f2_platform.stack.services import PG_ROLES, Postgres
from tests.timeseries_server import ExternalDatabaseSettings, session_database, url_dsn

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[Postgres]:
    state = make_state_dir("f2-test-external-db-")
    pg = Postgres(StackLayout(StackSettings(state_dir=state, postgres_port=free_port())))
    StackLayout(pg.settings).create()
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_TEST_TIMESERIES_DSN", "host=db.example user=admin dbname=postgres")
    assert ExternalDatabaseSettings().timeseries_dsn == "host=db.example user=admin dbname=postgres"
    monkeypatch.delenv("F2_TEST_TIMESERIES_DSN")
    assert ExternalDatabaseSettings().timeseries_dsn is None


def test_key_value_dsns_become_urls_with_their_options() -> None:
    dsn = "host=db.example port=6543 user=ad@min password=p/w:1 dbname=postgres sslmode=require"
    assert url_dsn(dsn, dbname="f2_test_x") == (
        "postgresql://ad%40min:p%2Fw%3A1@db.example:6543/f2_test_x?sslmode=require"
    )
    assert conninfo(url_dsn(dsn)) == conninfo(dsn)


def conninfo(dsn: str) -> dict[str, str]:
    return {k: v for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items() if v is not None}


def test_a_session_database_with_its_roles_is_made_used_and_dropped(server: Postgres) -> None:
    admin = server.dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        # A server that never saw the platform: its roles are created as rights holders (the stack's Postgres
        # made them as login roles of its own).
        for role in PG_ROLES:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    with session_database(admin) as database:
        assert database is not None
        owner = database.owner_dsn
        migrate(owner, "registry")
        migrate(owner, "timeseries")
        assert apply_grants(owner)
        seed_sample(owner)
        with psycopg.connect(owner, autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (database.name,)
            assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            device = conn.execute('SELECT min(deviceid) FROM "VtDevice".pins').fetchone()[0]  # type: ignore[index]
        env = database.env()
        assert {env["F2_TIMESERIES_DSN"], env["F2_REGISTRY_DSN"]} == {owner}
        sink, processor = env["F2_SINK_TIMESERIES_DSN"], env["F2_PROCESSOR_REGISTRY_DSN"]
        assert conninfo(sink)["user"] == database.logins["f2_sink"][0] != "f2_sink"
        with psycopg.connect(sink, autocommit=True) as conn:
            conn.execute(
                'INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value) '
                "VALUES ('2026-01-01T00:00:00Z', %s, 1, 1.5)",
                (device,),
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM decoded_data WHERE false")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute('SELECT 1 FROM "VtDevice".devices')
        with psycopg.connect(processor, autocommit=True) as conn:
            assert conn.execute('SELECT count(*) FROM "VtDevice".devices').fetchone()[0] > 0  # type: ignore[index]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute('UPDATE "VtDevice".datapoints SET decimals = decimals WHERE false')
        logins = [login for login, _ in database.logins.values()]
    with psycopg.connect(admin, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database.name,)).fetchone() is None
        assert conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (logins,)).fetchall() == []
        kept = conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1", (list(PG_ROLES),)
        ).fetchall()
        assert kept == sorted((role, False) for role in PG_ROLES)


def test_two_sessions_on_one_server_share_nothing_but_the_platform_roles(server: Postgres) -> None:
    admin = server.dsn("postgres")
    with session_database(admin) as first, session_database(admin) as second:
        assert first is not None and second is not None
        assert first.name != second.name
        assert set(first.logins.values()).isdisjoint(second.logins.values())
        with psycopg.connect(first.role_dsn("f2_sink")) as a, psycopg.connect(second.role_dsn("f2_sink")) as b:
            assert a.execute("SELECT current_database()").fetchone() == (first.name,)
            assert b.execute("SELECT current_database()").fetchone() == (second.name,)
