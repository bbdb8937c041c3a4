"""The test suite's PostgreSQL+TimescaleDB: the hermetic stack's own, or a server of the operator's choosing.

F2_TEST_TIMESERIES_DSN names a superuser of another server (production's edition, for instance the community
build with compression and continuous aggregates, which the hermetic stack cannot run). Each stack the session
starts then gets a database of its own there, `f2_test_<random>`, and one login role per daemon role,
`<role>_<random>`, a member of the platform's role (f2_processor, f2_sink, ...) so that it has exactly the
rights sql/grants.sql gives that role; all of them are dropped when the stack goes down. The platform's roles
are cluster-wide names that grants.sql, Compose and Kubernetes share: missing ones are created NOLOGIN (rights
only, no password) and left in place, so sessions running at the same time never change each other's
passwords. Kafka, Redis and Mosquitto still come from the hermetic stack.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic_settings import BaseSettings, SettingsConfigDict

from f2_platform.settings import StackSettings
from f2_platform.stack.manager import Stack
from f2_platform.stack.services import PG_ROLES

_URL_KEYS = ("user", "password", "host", "port", "dbname")


class ExternalDatabaseSettings(BaseSettings):
    """F2_TEST_TIMESERIES_DSN: a superuser DSN (URL or key=value) of a TimescaleDB server whose `postgres`
    database it can connect to; unset, the tests use the hermetic stack's own PostgreSQL."""

    model_config = SettingsConfigDict(env_prefix="F2_TEST_", extra="ignore")

    timeseries_dsn: str | None = None


def url_dsn(dsn: str, **changes: str) -> str:
    """`dsn` (either form) as a postgresql:// URL with `changes` applied: the tests edit DSNs as URLs."""
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params.update(changes)
    user = quote(params.get("user", ""), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = params.get("host", "localhost")
    host = f"[{host}]" if ":" in host else host
    port = f":{params['port']}" if params.get("port") else ""
    rest = {k: v for k, v in params.items() if k not in _URL_KEYS}
    query = f"?{urlencode(rest)}" if rest else ""
    return f"postgresql://{auth}{host}{port}/{quote(params.get('dbname', 'postgres'), safe='')}{query}"


@dataclass
class SessionDatabase:
    """A database and the daemons' login roles made for one stack on the external server."""

    admin_dsn: str
    name: str = field(default_factory=lambda: f"f2_test_{uuid.uuid4().hex[:12]}")
    # platform role -> (login role, password)
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def owner_dsn(self) -> str:
        return url_dsn(self.admin_dsn, dbname=self.name)

    def role_dsn(self, role: str) -> str:
        login, password = self.logins[role]
        return url_dsn(self.admin_dsn, dbname=self.name, user=login, password=password)

    def env(self) -> dict[str, str]:
        """The stack's database settings, pointed here (what Stack.env() says for its own PostgreSQL)."""
        return {
            "F2_TIMESERIES_DSN": self.owner_dsn,
            "F2_REGISTRY_DSN": self.owner_dsn,
            "F2_PROCESSOR_REGISTRY_DSN": self.role_dsn("f2_processor"),
            "F2_SINK_TIMESERIES_DSN": self.role_dsn("f2_sink"),
        }

    def create(self) -> None:
        suffix = self.name.removeprefix("f2_test_")
        with psycopg.connect(url_dsn(self.admin_dsn, dbname="postgres"), autocommit=True, connect_timeout=10) as c:
            for role in PG_ROLES:
                if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                    # Another session may create it meanwhile: the same rights holder either way.
                    with contextlib.suppress(psycopg.errors.DuplicateObject):
                        c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                login, password = f"{role}_{suffix}", uuid.uuid4().hex
                c.execute(
                    sql.SQL("CREATE ROLE {} LOGIN INHERIT PASSWORD {} IN ROLE {}").format(
                        sql.Identifier(login), sql.Literal(password), sql.Identifier(role)
                    )
                )
                self.logins[role] = (login, password)
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        with psycopg.connect(self.owner_dsn, autocommit=True, connect_timeout=10) as c:
            c.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

    def drop(self) -> None:
        with psycopg.connect(url_dsn(self.admin_dsn, dbname="postgres"), autocommit=True, connect_timeout=10) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
            left = []
            for login, _ in self.logins.values():
                try:
                    c.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
                except psycopg.Error as exc:  # still owning something elsewhere: name it, drop the others
                    left.append(f"{login}: {str(exc).strip()}")
        if left:
            raise RuntimeError(f"login roles left on the test server: {'; '.join(left)}")


@contextmanager
def session_database(admin_dsn: str | None) -> Iterator[SessionDatabase | None]:
    """A database of its own on the server `admin_dsn` names, dropped afterwards; None without one."""
    if admin_dsn is None:
        yield None
        return
    database = SessionDatabase(admin_dsn)
    try:
        database.create()
        yield database
    finally:
        database.drop()


class ExternalDatabaseStack(Stack):
    """The hermetic stack with its database settings pointed at a SessionDatabase: every DSN the tests and
    the daemons they start get (env(), env_settings(), stack_environment()) names the external server."""

    def __init__(self, settings: StackSettings, database: SessionDatabase) -> None:
        super().__init__(settings)
        self.database = database

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.database.env()}
