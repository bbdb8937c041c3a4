"""The registry made readable in the time-series database when they are different databases (postgres_fdw).

dbt's models and the documented queries join readings with registry names in one statement, in the time-
series database. When the registry lives elsewhere (another database, another server), `f2 db migrate` links
it: the extension postgres_fdw, a foreign server `f2_registry` pointing at the registry, a user mapping for
the role that runs the migration (the schema owner, whom dbt uses by default), and one foreign table per
registry table in a schema of the registry's name. Queries then read `"VtDevice".devices` in the time-series
database as they would in a single database: live rows, nothing copied, nothing to schedule.

Re-running refreshes the link: the server's address and the credentials follow the settings, and foreign
tables gain or change the columns the registry gained or changed (a later registry migration). A schema of
that name holding anything but this link's foreign tables is never touched: the link is refused, saying why.
The statements are built here (pure) and run by `link_registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from f2_platform.errors import MigrationError
from streaming.registry_schema import quoted_schema

SERVER: Final = "f2_registry"
# The reference's tables: what dbt and the queries of docs/domain.md read (not the platform's own f2_* tables).
TABLES: Final = ("devicetypes", "devicetemplates", "devices", "connectors", "pins", "datapointicons", "datapoints")
# Connection options of the registry DSN that postgres_fdw takes as server options.
SERVER_OPTIONS: Final = ("host", "port", "dbname", "sslmode", "sslrootcert", "connect_timeout")
MARK: Final = "f2: foreign tables of the registry (postgres_fdw server f2_registry), kept by f2 db migrate"

Say = Callable[[str], None]
Columns = dict[str, list[tuple[str, str]]]  # table -> [(column, type)] in column order

_IDENTITY_SQL = (
    "SELECT pg_postmaster_start_time()::text, current_database(), coalesce(inet_server_port(), 0), "
    "(SELECT oid FROM pg_database WHERE datname = current_database())::bigint"
)
_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = to_regnamespace(%(schema)s) AND c.relname = ANY(%(tables)s) AND c.relkind = %(kind)s
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_FOREIGN_TABLES_SQL = """
SELECT c.relname FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid
JOIN pg_foreign_server s ON s.oid = f.ftserver
WHERE c.relnamespace = to_regnamespace(%(schema)s) AND s.srvname = %(server)s
"""
_OTHER_RELATIONS_SQL = """
SELECT c.relname, c.relkind::text FROM pg_class c
WHERE c.relnamespace = to_regnamespace(%(schema)s)
  AND NOT EXISTS (SELECT 1 FROM pg_foreign_table f JOIN pg_foreign_server s ON s.oid = f.ftserver
                  WHERE f.ftrelid = c.oid AND s.srvname = %(server)s)
ORDER BY c.relname
"""


@dataclass(frozen=True)
class LinkTarget:
    """Where the time-series server reaches the registry, and as whom."""

    options: dict[str, str]  # server options
    user: str | None
    password: str | None

    @staticmethod
    def from_dsn(dsn: str) -> LinkTarget:
        parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
        options = {k: parts[k] for k in SERVER_OPTIONS if k in parts}
        return LinkTarget(options, parts.get("user"), parts.get("password"))

    def where(self) -> str:
        host, port = self.options.get("host", "localhost"), self.options.get("port", "5432")
        return f"{host}:{port}/{self.options.get('dbname', '')}"


def create_options(wanted: Mapping[str, str]) -> sql.Composable:
    """OPTIONS (...) of a CREATE statement (nothing when there are none)."""
    if not wanted:
        return sql.SQL("")
    return sql.SQL("OPTIONS ({})").format(
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(k), sql.Literal(v)) for k, v in wanted.items())
    )


def options_clause(current: Mapping[str, str], wanted: Mapping[str, str]) -> sql.Composable | None:
    """OPTIONS (...) of an ALTER statement that turns `current` into `wanted` (ADD, SET, DROP); None when they
    are equal."""
    changes: list[sql.Composable] = []
    for name, value in wanted.items():
        if current.get(name) != value:
            verb = "SET" if name in current else "ADD"
            changes.append(sql.SQL("{} {} {}").format(sql.SQL(verb), sql.Identifier(name), sql.Literal(value)))
    changes += [sql.SQL("DROP {}").format(sql.Identifier(name)) for name in current if name not in wanted]
    if not changes:
        return None
    return sql.SQL("OPTIONS ({})").format(sql.SQL(", ").join(changes))


def table_statements(schema: str, remote: Columns, local: Columns) -> list[sql.Composed]:
    """Pure: what makes the foreign tables in `local` (those already linked) match the registry's `remote`."""
    target = sql.SQL(quoted_schema(schema))
    out: list[sql.Composed] = []
    for table in TABLES:
        columns = remote.get(table)
        if not columns:
            continue
        name = sql.SQL("{}.{}").format(target, sql.Identifier(table))
        have = dict(local.get(table, []))
        if table not in local:
            out.append(
                sql.SQL("CREATE FOREIGN TABLE {} ({}) SERVER {} OPTIONS (schema_name {}, table_name {})").format(
                    name,
                    sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns),
                    sql.Identifier(SERVER),
                    sql.Literal(schema),
                    sql.Literal(table),
                )
            )
            continue
        wanted = dict(columns)
        for column, kind in columns:
            if column not in have:
                out.append(
                    sql.SQL("ALTER FOREIGN TABLE {} ADD COLUMN {} {}").format(
                        name, sql.Identifier(column), sql.SQL(kind)
                    )
                )
            elif have[column] != kind:
                out.append(
                    sql.SQL("ALTER FOREIGN TABLE {} ALTER COLUMN {} TYPE {}").format(
                        name, sql.Identifier(column), sql.SQL(kind)
                    )
                )
        out += [
            sql.SQL("ALTER FOREIGN TABLE {} DROP COLUMN {}").format(name, sql.Identifier(column))
            for column in have
            if column not in wanted
        ]
    return out


def _columns(conn: psycopg.Connection, schema: str, kind: str) -> Columns:
    found: Columns = {}
    rows = conn.execute(_COLUMNS_SQL, {"schema": quoted_schema(schema), "tables": list(TABLES), "kind": kind})
    for table, column, type_ in rows:
        found.setdefault(str(table), []).append((str(column), str(type_)))
    return found


def same_database(a: psycopg.Connection, b: psycopg.Connection) -> bool:
    """Whether two connections reach the same database (the addresses they were given may differ)."""
    return a.execute(_IDENTITY_SQL).fetchone() == b.execute(_IDENTITY_SQL).fetchone()


def separate_databases(timeseries_dsn: str, registry_dsn: str) -> bool:
    """Whether the registry lives in another database than the time series (whatever their addresses say)."""
    with (
        psycopg.connect(registry_dsn, autocommit=True, connect_timeout=10) as registry,
        psycopg.connect(timeseries_dsn, autocommit=True, connect_timeout=10) as ts,
    ):
        return not same_database(registry, ts)


def link_registry(timeseries_dsn: str, registry_dsn: str, schema: str, link_dsn: str | None, say: Say) -> bool:
    """Link the registry into the time-series database when they are different databases; False when they are
    one database (nothing to do). `link_dsn` is the registry as the time-series server reaches it (default:
    `registry_dsn`); its credentials go into the user mapping, so a read-only role is best."""
    target = LinkTarget.from_dsn(link_dsn or registry_dsn)
    with (
        psycopg.connect(registry_dsn, autocommit=True, connect_timeout=10) as registry,
        psycopg.connect(timeseries_dsn, autocommit=True, connect_timeout=10) as ts,
    ):
        if same_database(registry, ts):
            return False
        remote = _columns(registry, schema, "r")
        if not remote:
            raise MigrationError(f'the registry has no tables in schema "{schema}" to link: run f2 db migrate there')
        params = {"schema": quoted_schema(schema), "server": SERVER}
        others = ts.execute(_OTHER_RELATIONS_SQL, params).fetchall()
        if others:
            shown = ", ".join(f"{name} ({kind})" for name, kind in others[:5])
            raise MigrationError(
                f'the time-series database has its own schema "{schema}" holding {shown}: dbt and queries there would '
                f"read it instead of the registry at {target.where()}. Rename or drop that schema (it is not the "
                "registry, which lives in another database), then run f2 db migrate again"
            )
        try:
            with ts.transaction():
                _link(ts, schema, target, remote)
                ts.execute(sql.SQL("SELECT count(*) FROM {}.devices").format(sql.SQL(quoted_schema(schema))))
        except psycopg.Error as exc:
            raise MigrationError(
                f"linking the registry at {target.where()} into the time-series database failed, nothing was changed: "
                f"{str(exc).strip()}. The time-series server must reach the registry: set F2_REGISTRY_LINK_DSN to "
                "the registry's address as that server sees it, with a role that can read the registry"
            ) from exc
    say(
        f'registry at {target.where()} linked into the time-series database: "{schema}".* are foreign tables '
        f"(postgres_fdw server {SERVER})"
    )
    return True


def _link(ts: psycopg.Connection, schema: str, target: LinkTarget, remote: Columns) -> None:
    ts.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
    row = ts.execute("SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s", (SERVER,)).fetchone()
    server = sql.Identifier(SERVER)
    if row is None:
        ts.execute(
            sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw {}").format(
                server, create_options(target.options)
            )
        )
    else:
        current = dict(option.split("=", 1) for option in (row[0] or []))
        clause = options_clause(current, target.options)
        if clause is not None:
            ts.execute(sql.SQL("ALTER SERVER {} {}").format(server, clause))
    credentials = {k: v for k, v in (("user", target.user), ("password", target.password)) if v is not None}
    ts.execute(sql.SQL("DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER {}").format(server))
    ts.execute(sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} {}").format(server, create_options(credentials)))
    ts.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.SQL(quoted_schema(schema))))
    ts.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.SQL(quoted_schema(schema)), sql.Literal(MARK)))
    linked = {str(r[0]) for r in ts.execute(_FOREIGN_TABLES_SQL, {"schema": quoted_schema(schema), "server": SERVER})}
    local = {table: cols for table, cols in _columns(ts, schema, "f").items() if table in linked}
    for statement in table_statements(schema, remote, local):
        ts.execute(statement)
