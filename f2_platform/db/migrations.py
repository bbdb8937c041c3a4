"""Numbered, append-only SQL migrations in sql/<target>/NNNN_name.sql, applied once each.

Two targets with their own connection settings: `registry` (F2_REGISTRY_DSN) and `timeseries`
(F2_TIMESERIES_DSN). Each database records what it applied in f2_schema_migrations.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from f2_platform.db import timeseries_adoption
from f2_platform.errors import MigrationError
from f2_platform.settings import PROJECT_DIR

SQL_DIR = PROJECT_DIR / "sql"
TARGETS = ("registry", "timeseries")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS f2_schema_migrations (
    target text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, version)
)
"""


@dataclass(frozen=True)
class Migration:
    target: str
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.target}/{self.path.name}"


def discover(target: str, sql_dir: Path = SQL_DIR) -> list[Migration]:
    if target not in TARGETS:
        raise MigrationError(f"unknown migration target {target!r}; expected one of {', '.join(TARGETS)}")
    if not (sql_dir / target).is_dir():
        # An installed wheel holds no sql/: without this, nothing would be applied and nothing said.
        raise MigrationError(
            f"no migrations folder {sql_dir / target}: set F2_PROJECT_DIR to the folder holding sql/, dbt/ and"
            " workspace.yaml (a checkout's root; /app in the image)"
        )
    found: list[Migration] = []
    for path in sorted((sql_dir / target).glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(target, int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"sql/{target}: two migrations share a number")
    return found


def applied(conn: psycopg.Connection, target: str) -> dict[int, str]:
    conn.execute(_LEDGER_DDL)
    rows = conn.execute("SELECT version, checksum FROM f2_schema_migrations WHERE target = %s", (target,)).fetchall()
    return {int(v): str(c) for v, c in rows}


def migrate(
    dsn: str, target: str, sql_dir: Path = SQL_DIR, say: Callable[[str], None] | None = None
) -> list[Migration]:
    """Apply the pending migrations of `target` in order, each in its own transaction; returns those applied.

    On `timeseries`, an existing `decoded_data` (the reference deployment's) is adopted first and
    `latest_values` filled from it afterwards (f2_platform/db/timeseries_adoption.py); `say` hears what that did.
    """
    migrations = discover(target, sql_dir)
    done: list[Migration] = []
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        # One migrator at a time per target, even from several hosts.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"f2-migrate-{target}",))
        try:
            if target == "timeseries":
                timeseries_adoption.before_migrations(conn, say)
            ledger = applied(conn, target)
            for migration in migrations:
                if migration.version in ledger:
                    if ledger[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"{migration.label} was changed after it was applied; migrations are append-only: "
                            "revert the edit and add a new numbered migration instead"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO f2_schema_migrations (target, version, name, checksum) "
                            "VALUES (%s, %s, %s, %s)",
                            (target, migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.label} failed and was rolled back: {str(exc).strip()}"
                    ) from exc
                done.append(migration)
            if target == "timeseries":
                timeseries_adoption.after_migrations(conn, say)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"f2-migrate-{target}",))
    return done


GRANTS = SQL_DIR / "grants.sql"
GRANT_ROLES = ("f2_processor", "f2_sink", "f2_grafana")


def apply_grants(dsn: str, path: Path = GRANTS) -> bool:
    """Give the daemons' roles their least-privilege rights (idempotent); False when the roles don't exist."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        found = {
            r[0]
            for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(GRANT_ROLES),)
            ).fetchall()
        }
        if found != set(GRANT_ROLES):
            return False
        try:
            with conn.transaction():
                conn.execute(path.read_text())
        except psycopg.Error as exc:
            raise MigrationError(f"{path.name} failed and was rolled back: {str(exc).strip()}") from exc
    return True
