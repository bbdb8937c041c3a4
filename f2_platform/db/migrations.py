"""Numbered, append-only SQL migrations in sql/<target>/NNNN_name.sql, applied once each.

Two targets with their own connection settings: `registry` (F2_REGISTRY_DSN) and `timeseries`
(F2_TIMESERIES_DSN). Each database records what it applied in f2_schema_migrations.

Registry migrations name the schema `"VtDevice"`; they are applied to the schema F2_REGISTRY_SCHEMA names
(streaming.registry_schema.in_schema), and a registry in another schema keeps its own ledger entries
(target `registry:<schema>`), so two registries in one database never share them.

A migration that could not stay as it was (it failed on registries it must accept) is replaced in place by a
file whose first lines say `-- f2:replaces <sha256 of the earlier file>`: a database that applied the earlier
file accepts it as applied, and a later migration brings such databases to where the replacement leads.
Any other change to an applied file is refused (append-only).
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
from streaming.registry_schema import DEFAULT_SCHEMA, in_schema

SQL_DIR = PROJECT_DIR / "sql"
TARGETS = ("registry", "timeseries")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REPLACES = re.compile(r"^-- f2:replaces ([0-9a-f]{64})\s*$", re.MULTILINE)

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

    def rendered(self, registry_schema: str = DEFAULT_SCHEMA) -> str:
        """The statements as applied: registry migrations in the configured schema."""
        return in_schema(self.sql, registry_schema) if self.target == "registry" else self.sql

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def replaces(self) -> frozenset[str]:
        """Checksums of the earlier forms of this migration that a database may have applied instead."""
        return frozenset(_REPLACES.findall(self.sql))

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


NOTICE_PREFIX = "f2: "


def _notice_handler(say: Callable[[str], None]) -> Callable[[psycopg.errors.Diagnostic], None]:
    """Passes on what the registry migrations say for the operator (RAISE NOTICE 'f2: ...'), nothing else."""

    def handle(notice: psycopg.errors.Diagnostic) -> None:
        message = notice.message_primary or ""
        if message.startswith(NOTICE_PREFIX):
            say(f"registry: {message[len(NOTICE_PREFIX) :]}")

    return handle


def ledger_target(target: str, registry_schema: str = DEFAULT_SCHEMA) -> str:
    """The ledger's name for `target`: a registry outside "VtDevice" has entries of its own."""
    if target == "registry" and registry_schema != DEFAULT_SCHEMA:
        return f"registry:{registry_schema}"
    return target


def migrate(
    dsn: str,
    target: str,
    sql_dir: Path = SQL_DIR,
    say: Callable[[str], None] | None = None,
    registry_schema: str = DEFAULT_SCHEMA,
) -> list[Migration]:
    """Apply the pending migrations of `target` in order, each in its own transaction; returns those applied.

    Registry migrations go to `registry_schema` (F2_REGISTRY_SCHEMA); what they report with RAISE NOTICE
    (constraints that existing rows break, columns left as they were) is passed to `say`.

    On `timeseries`, an existing `decoded_data` (the reference deployment's) is adopted first and
    `latest_values` filled from it afterwards (f2_platform/db/timeseries_adoption.py); `say` hears what that did.
    """
    migrations = discover(target, sql_dir)
    done: list[Migration] = []
    ledger_name = ledger_target(target, registry_schema)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        if say is not None and target == "registry":
            conn.add_notice_handler(_notice_handler(say))
        # One migrator at a time per target, even from several hosts.
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"f2-migrate-{ledger_name}",))
        try:
            if target == "timeseries":
                timeseries_adoption.before_migrations(conn, say)
            ledger = applied(conn, ledger_name)
            for migration in migrations:
                if migration.version in ledger:
                    recorded = ledger[migration.version]
                    if recorded != migration.checksum and recorded not in migration.replaces:
                        raise MigrationError(
                            f"{migration.label} was changed after it was applied; migrations are append-only: "
                            "revert the edit and add a new numbered migration instead"
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.rendered(registry_schema))
                        conn.execute(
                            "INSERT INTO f2_schema_migrations (target, version, name, checksum) "
                            "VALUES (%s, %s, %s, %s)",
                            (ledger_name, migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.label} failed and was rolled back: {str(exc).strip()}"
                    ) from exc
                done.append(migration)
            if target == "timeseries":
                timeseries_adoption.after_migrations(conn, say)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"f2-migrate-{ledger_name}",))
    return done


GRANTS = SQL_DIR / "grants.sql"
GRANTS_REGISTRY = SQL_DIR / "grants_registry.sql"
# The enrollment service's role, in the registry's database: applied where the role exists.
GRANTS_ENROLLMENT = SQL_DIR / "grants_enrollment.sql"
GRANT_ROLES = ("f2_processor", "f2_sink", "f2_grafana")
REGISTRY_GRANT_ROLES = ("f2_processor",)
ENROLLMENT_GRANT_ROLES = ("f2_enroll",)


def apply_grants(
    dsn: str,
    path: Path = GRANTS,
    registry_schema: str = DEFAULT_SCHEMA,
    roles: tuple[str, ...] = GRANT_ROLES,
) -> bool:
    """Give the daemons' roles their least-privilege rights (idempotent); False when the roles don't exist.

    `path` names the registry schema "VtDevice"; the rights are given on `registry_schema`."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        found = {
            r[0]
            for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(roles),)).fetchall()
        }
        if found != set(roles):
            return False
        try:
            with conn.transaction():
                conn.execute(in_schema(path.read_text(), registry_schema))
        except psycopg.Error as exc:
            raise MigrationError(f"{path.name} failed and was rolled back: {str(exc).strip()}") from exc
    return True
