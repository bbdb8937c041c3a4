"""Adopting the reference deployment's stored readings: its `decoded_data` becomes the platform's.

That deployment keeps `decoded_data` with the platform's four columns, but possibly as a plain table (not a
hypertable), without the primary key, with readings that have no value (NULL), and with its own hourly
continuous aggregate `decoded_hourly_stats` on top. `f2 db migrate` calls `before_migrations` ahead of the
numbered time-series migrations (whose first one creates a hypertable, which TimescaleDB refuses for a plain
table that holds rows) and `after_migrations` once they are applied.

What the platform needs from an adopted table, and what it does (docs/migration.md, docs/domain.md §8):
- the four columns with the platform's types; a missing column or another type is refused, never altered;
- a hypertable on "timestamp": a plain table is converted in place with its rows
  (`create_hypertable(..., migrate_data => true)`, 1-day chunks); an existing hypertable keeps its chunks;
- one row per (timestamp, device_id, datapoint_id): the sink's upsert and exactly-once rely on it. A missing
  key is added; duplicate keys or NULL key columns are refused with the rows to look at and SQL that moves
  the extra copies aside. Nothing is ever deleted or rewritten here;
- `value` may stay nullable: a reading without a value is kept, the platform's own writes never produce one,
  the aggregates and `latest_values` leave it out, and the data-quality check `missing_values` reports it.
Views, materialized views and continuous aggregates that read `decoded_data` are left as they are;
`replace_deployment_aggregate` replaces `decoded_hourly_stats` only when asked (`--replace-deployment-aggregate`).

Everything a step changes happens in one transaction: a refusal or a failure leaves the table as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import psycopg
from psycopg import sql

from f2_platform.errors import MigrationError

Say = Callable[[str], None]

TABLE: Final = "decoded_data"
KEY: Final[tuple[str, ...]] = ("timestamp", "device_id", "datapoint_id")
COLUMN_TYPES: Final[dict[str, str]] = {
    "timestamp": "timestamp with time zone",
    "device_id": "integer",
    "datapoint_id": "integer",
    "value": "double precision",
}
CHUNK_INTERVAL: Final = timedelta(days=1)
DEPLOYMENT_AGGREGATE: Final = "decoded_hourly_stats"
# The platform's own objects that read decoded_data (continuous aggregates on the full edition).
PLATFORM_READERS: Final = frozenset({"readings_hourly", "readings_daily"})
EXAMPLES: Final = 5

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
FROM pg_attribute a
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_RELATION_SQL = "SELECT relkind IN ('r', 'p') FROM pg_class WHERE oid = to_regclass(%(table)s)"
_HYPERTABLE_SQL = """
SELECT d.time_interval
FROM timescaledb_information.dimensions d
WHERE d.hypertable_schema = current_schema() AND d.hypertable_name = %(name)s AND d.dimension_number = 1
"""
_IS_HYPERTABLE_SQL = (
    "SELECT count(*) FROM timescaledb_information.hypertables "
    "WHERE hypertable_schema = current_schema() AND hypertable_name = %(name)s"
)
# Unique indexes (a primary key is one) and the columns they cover, in index order.
_UNIQUE_SQL = """
SELECT i.relname, x.indisprimary,
       array_agg(a.attname::text ORDER BY k.ord) AS columns
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
WHERE x.indrelid = %(table)s::regclass AND x.indisunique AND x.indpred IS NULL
GROUP BY i.relname, x.indisprimary
"""
# Views and materialized views whose rules read the table (a continuous aggregate's view is listed by
# TimescaleDB's catalog instead: it reads its materialization table).
_VIEWS_SQL = """
SELECT DISTINCT c.relname, c.relkind::text
FROM pg_depend d
JOIN pg_rewrite r ON r.oid = d.objid
JOIN pg_class c ON c.oid = r.ev_class
WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = %(table)s::regclass AND c.oid <> %(table)s::regclass
ORDER BY c.relname
"""
_CAGGS_SQL = """
SELECT view_name FROM timescaledb_information.continuous_aggregates
WHERE hypertable_schema = current_schema() AND hypertable_name = %(name)s
ORDER BY view_name
"""
_NULL_KEYS_SQL = (
    'SELECT count(*) FILTER (WHERE "timestamp" IS NULL), count(*) FILTER (WHERE device_id IS NULL), '
    "count(*) FILTER (WHERE datapoint_id IS NULL) FROM decoded_data"
)
_DUPLICATES_SQL = """
SELECT "timestamp", device_id, datapoint_id, count(*) AS copies, count(*) OVER () AS keys
FROM decoded_data
WHERE "timestamp" IS NOT NULL AND device_id IS NOT NULL AND datapoint_id IS NOT NULL
GROUP BY 1, 2, 3
HAVING count(*) > 1
ORDER BY 1, 2, 3
LIMIT %(limit)s
"""
_COUNTS_SQL = "SELECT count(*), count(*) FILTER (WHERE value IS NULL) FROM decoded_data"
_CREATE_HYPERTABLE_SQL = (
    "SELECT create_hypertable('decoded_data', by_range('timestamp', %(interval)s::interval), migrate_data => true)"
)
_ADD_KEY_SQL = 'ALTER TABLE decoded_data ADD PRIMARY KEY ("timestamp", device_id, datapoint_id)'
_ADD_UNIQUE_SQL = 'CREATE UNIQUE INDEX decoded_data_reading_key ON decoded_data ("timestamp", device_id, datapoint_id)'
# The newest reading with a value of every series: what the sink would have left in latest_values.
SEED_LATEST_SQL = """
INSERT INTO latest_values (device_id, datapoint_id, "timestamp", value)
SELECT DISTINCT ON (device_id, datapoint_id) device_id, datapoint_id, "timestamp", value
FROM decoded_data
WHERE value IS NOT NULL
ORDER BY device_id, datapoint_id, "timestamp" DESC
ON CONFLICT (device_id, datapoint_id) DO NOTHING
"""
_LATEST_EMPTY_SQL = "SELECT NOT EXISTS (SELECT 1 FROM latest_values) AND EXISTS (SELECT 1 FROM decoded_data)"

# What an operator runs to keep one copy of each key in decoded_data and the others beside it: nothing is
# lost, and the copy kept is one with a value when there is one. (tableoid, ctid) names a row in a plain
# table and in a hypertable's chunks alike. A full-edition hypertable's compressed chunks are decompressed
# first: DELETE on compressed chunks fails in some TimescaleDB versions (and reads no ctid of a row there);
# the storage policy compresses them again. Nothing to decompress on a plain table or the Apache edition.
MOVE_DUPLICATES_SQL = """BEGIN;
DO $$
BEGIN
    IF to_regclass('timescaledb_information.chunks') IS NOT NULL THEN
        PERFORM decompress_chunk(format('%I.%I', chunk_schema, chunk_name)::regclass)
        FROM timescaledb_information.chunks
        WHERE hypertable_schema = current_schema() AND hypertable_name = 'decoded_data' AND is_compressed;
    END IF;
END
$$;
CREATE TABLE IF NOT EXISTS decoded_data_duplicates (LIKE decoded_data);
WITH ranked AS (
    SELECT tableoid AS part, ctid AS row_id,
           row_number() OVER (PARTITION BY "timestamp", device_id, datapoint_id
                              ORDER BY value IS NULL, value DESC) AS copy
    FROM decoded_data
), moved AS (
    DELETE FROM decoded_data d USING ranked r
    WHERE d.tableoid = r.part AND d.ctid = r.row_id AND r.copy > 1
    RETURNING d.*
)
INSERT INTO decoded_data_duplicates SELECT * FROM moved;
COMMIT;"""


@dataclass(frozen=True)
class UniqueIndex:
    name: str
    primary: bool
    columns: tuple[str, ...]


@dataclass(frozen=True)
class TableState:
    """What `decoded_data` looks like in a database, read from the catalogs only (no row is scanned)."""

    exists: bool
    columns: dict[str, tuple[str, bool, bool]] = field(default_factory=dict)  # name -> (type, not null, default)
    hypertable: bool = False
    chunk_interval: timedelta | None = None
    unique_indexes: tuple[UniqueIndex, ...] = ()
    readers: tuple[tuple[str, str], ...] = ()  # (name, kind) of views, matviews, continuous aggregates

    @property
    def reading_key(self) -> UniqueIndex | None:
        """A unique index over exactly the key's columns (in any order: ON CONFLICT matches the set)."""
        return next((i for i in self.unique_indexes if sorted(i.columns) == sorted(KEY)), None)

    @property
    def primary_key(self) -> UniqueIndex | None:
        return next((i for i in self.unique_indexes if i.primary), None)

    @property
    def value_nullable(self) -> bool:
        return "value" in self.columns and not self.columns["value"][1]

    def deployment_readers(self) -> tuple[tuple[str, str], ...]:
        return tuple(r for r in self.readers if r[0] not in PLATFORM_READERS)


@dataclass
class AdoptionReport:
    """What `before_migrations` found and did, for the operator."""

    converted: bool = False
    key_added: str | None = None
    rows: int | None = None
    null_values: int | None = None
    readers_left: tuple[tuple[str, str], ...] = ()
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.converted:
            out.append(
                f"decoded_data: plain table converted into a hypertable with its {self.rows} row(s) "
                f"(create_hypertable migrate_data, chunks of {CHUNK_INTERVAL.days} day)"
            )
        if self.key_added:
            out.append(f"decoded_data: key (timestamp, device_id, datapoint_id) added as {self.key_added}")
        if self.null_values:
            out.append(
                f"decoded_data: {self.null_values} reading(s) without a value (NULL) kept as they are; the data-"
                f"quality check missing_values reports them and the aggregates leave them out"
            )
        for name, kind in self.readers_left:
            out.append(
                f"decoded_data is read by {kind} {name}: left as it is"
                + (
                    " (replace it with `f2 db migrate --replace-deployment-aggregate`)"
                    if name == DEPLOYMENT_AGGREGATE
                    else ""
                )
            )
        return out + self.notes


_KINDS: Final = {"v": "view", "m": "materialized view"}


def inspect(conn: psycopg.Connection) -> TableState:
    """The catalogs' view of `decoded_data` in the connection's current schema."""
    row = conn.execute(_RELATION_SQL, {"table": TABLE}).fetchone()
    if not row or not row[0]:
        return TableState(exists=False)
    columns = {
        str(name): (str(kind), bool(not_null), bool(default))
        for name, kind, not_null, default in conn.execute(_COLUMNS_SQL, {"table": TABLE}).fetchall()
    }
    indexes = tuple(
        UniqueIndex(str(name), bool(primary), tuple(cols))
        for name, primary, cols in conn.execute(_UNIQUE_SQL, {"table": TABLE}).fetchall()
    )
    timescale = _has_timescaledb(conn)
    hypertable = bool(timescale and conn.execute(_IS_HYPERTABLE_SQL, {"name": TABLE}).fetchone()[0])  # type: ignore[index]
    interval = None
    if hypertable:
        found = conn.execute(_HYPERTABLE_SQL, {"name": TABLE}).fetchone()
        interval = found[0] if found and isinstance(found[0], timedelta) else None
    caggs = {str(name) for (name,) in conn.execute(_CAGGS_SQL, {"name": TABLE})} if timescale else set()
    # A continuous aggregate with real-time results is also a view reading the table: listed once, as what it is.
    readers = [(name, "continuous aggregate") for name in caggs]
    readers += [
        (str(name), _KINDS.get(str(kind), str(kind)))
        for name, kind in conn.execute(_VIEWS_SQL, {"table": TABLE})
        if str(name) not in caggs
    ]
    return TableState(True, columns, hypertable, interval, indexes, tuple(sorted(readers)))


def _has_timescaledb(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return bool(row and row[0])


def column_problems(state: TableState) -> list[str]:
    """Why the table's columns are not the platform's (empty when they are)."""
    problems = []
    for name, expected in COLUMN_TYPES.items():
        if name not in state.columns:
            problems.append(f'column "{name}" is missing (expected {expected})')
            continue
        found = state.columns[name][0]
        if found != expected:
            hint = (
                ' (devices send UTC: ALTER TABLE decoded_data ALTER COLUMN "timestamp" TYPE timestamptz '
                "USING \"timestamp\" AT TIME ZONE 'UTC')"
                if name == "timestamp" and found == "timestamp without time zone"
                else ""
            )
            problems.append(f'column "{name}" is {found}, expected {expected}{hint}')
    for name, (kind, not_null, default) in state.columns.items():
        if name not in COLUMN_TYPES and not_null and not default:
            problems.append(
                f'extra column "{name}" ({kind}) is NOT NULL without a default: the sink writes only the four '
                f"reading columns; give it a default or drop NOT NULL"
            )
    return problems


def needs_adoption(state: TableState) -> bool:
    return state.exists and (not state.hypertable or state.reading_key is None)


def before_migrations(conn: psycopg.Connection, say: Say | None = None) -> AdoptionReport | None:
    """Make an existing `decoded_data` the platform's (hypertable, key) before the numbered migrations run.

    None when there is nothing to adopt (no table yet: the migrations create it; or already a keyed
    hypertable). Raises MigrationError, changing nothing, when the table cannot be adopted as it is.
    """
    state = inspect(conn)
    if not state.exists:
        return None
    problems = column_problems(state)
    if problems:
        raise MigrationError(
            "decoded_data exists but is not the platform's table: " + "; ".join(problems) + ". Nothing was changed."
        )
    if not needs_adoption(state):
        if say is not None and _first_migration(conn):
            # A keyed hypertable is used as it is; its readers are said once, on the first migration.
            for line in AdoptionReport(readers_left=state.deployment_readers()).lines():
                say(line)
        return None
    report = AdoptionReport()
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            # Writers wait (readers do not) while the rows are checked and moved: what was checked is moved.
            conn.execute("LOCK TABLE decoded_data IN EXCLUSIVE MODE")
            _refuse_null_keys(conn)
            if state.reading_key is None:
                _refuse_duplicates(conn)
            rows, nulls = conn.execute(_COUNTS_SQL).fetchone() or (0, 0)
            report.rows, report.null_values = int(rows), int(nulls)
            if state.reading_key is None:
                if state.primary_key is None:
                    conn.execute(_ADD_KEY_SQL)
                    report.key_added = "the primary key decoded_data_pkey"
                else:
                    # Another primary key stays; a unique index over the reading's columns serves ON CONFLICT.
                    conn.execute(_ADD_UNIQUE_SQL)
                    report.key_added = (
                        f"unique index decoded_data_reading_key (primary key {state.primary_key.name} kept)"
                    )
            if not state.hypertable:
                conn.execute(_CREATE_HYPERTABLE_SQL, {"interval": CHUNK_INTERVAL})
                report.converted = True
    except psycopg.Error as exc:
        raise MigrationError(
            f"adopting decoded_data failed and was rolled back, nothing was changed: {str(exc).strip()}. "
            "See docs/migration.md, 'Stored readings'."
        ) from exc
    if state.hypertable and state.chunk_interval and state.chunk_interval != CHUNK_INTERVAL:
        report.notes.append(
            f"decoded_data: existing chunk interval {state.chunk_interval} kept (the platform creates 1-day chunks; "
            "set_chunk_time_interval changes it for new chunks)"
        )
    report.readers_left = state.deployment_readers()
    if say is not None:
        for line in report.lines():
            say(line)
    return report


def _first_migration(conn: psycopg.Connection) -> bool:
    if conn.execute("SELECT to_regclass('f2_schema_migrations') IS NULL").fetchone() == (True,):
        return True
    row = conn.execute("SELECT count(*) FROM f2_schema_migrations WHERE target = 'timeseries'").fetchone()
    return not (row and row[0])


def _refuse_null_keys(conn: psycopg.Connection) -> None:
    counts = conn.execute(_NULL_KEYS_SQL).fetchone() or (0, 0, 0)
    found = {column: int(n) for column, n in zip(KEY, counts, strict=True) if n}
    if found:
        listed = ", ".join(f'{n} row(s) with "{column}" NULL' for column, n in found.items())
        where = " OR ".join(f'"{column}" IS NULL' for column in found)
        look = f"SELECT * FROM decoded_data WHERE {where}"  # noqa: S608 - shown to the operator, fixed names
        raise MigrationError(
            f"decoded_data holds readings without a key: {listed}. A reading needs its time, device and "
            f"datapoint; the platform cannot key or chunk such rows and does not delete them. Look at them with "
            f"`{look}`, then fill the key or move them to a table of your own "
            f"(CREATE TABLE decoded_data_unkeyed AS SELECT ...; DELETE ...), and run `f2 db migrate` again. "
            f"Nothing was changed."
        )


def _refuse_duplicates(conn: psycopg.Connection) -> None:
    rows = conn.execute(_DUPLICATES_SQL, {"limit": EXAMPLES}).fetchall()
    if not rows:
        return
    keys = int(rows[0][4])
    examples = "; ".join(
        f"{ts.isoformat()} device {device} datapoint {dp} ({copies} copies)" for ts, device, dp, copies, _ in rows
    )
    raise MigrationError(
        f"decoded_data holds {keys} key(s) (timestamp, device_id, datapoint_id) stored more than once, e.g. "
        f"{examples}. The platform keeps one reading per key (its upsert and exactly-once rely on it) and never "
        f"deletes a row itself. To keep one copy in decoded_data (one with a value) and every other copy in "
        f"decoded_data_duplicates, run:\n{MOVE_DUPLICATES_SQL}\nthen `f2 db migrate` again. Nothing was changed."
    )


def after_migrations(conn: psycopg.Connection, say: Say | None = None) -> int:
    """Give an adopted table's series their newest value in `latest_values` (empty after the migration that
    created it); returns the series added. Nothing happens once the sink has written."""
    tables = conn.execute("SELECT to_regclass('latest_values') IS NOT NULL AND to_regclass('decoded_data') IS NOT NULL")
    if tables.fetchone() != (True,):
        return 0
    row = conn.execute(_LATEST_EMPTY_SQL).fetchone()
    if not row or not row[0]:
        return 0
    with conn.transaction():
        added = conn.execute(SEED_LATEST_SQL).rowcount
    if say is not None and added:
        say(f"latest_values: the newest reading with a value of {added} series taken from decoded_data")
    return added


def replace_deployment_aggregate(conn: psycopg.Connection, say: Say | None = None) -> bool:
    """Replace the deployment's `decoded_hourly_stats` with a view of the platform's `readings_hourly`.

    Only on request: its users' queries then read the platform's columns (bucket, device_id, datapoint_id,
    avg_value, min_value, max_value, sample_count, first_value, last_value, stddev_value). Returns False when
    there is nothing to replace (no such object, or already the platform's view). Objects that depend on it
    make the drop fail (no CASCADE): they are named in the error.
    """
    kind = _relation_kind(conn, DEPLOYMENT_AGGREGATE)
    if kind is None:
        return False
    if _has_timescaledb(conn):
        row = conn.execute(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_schema = current_schema() AND view_name = %s",
            (DEPLOYMENT_AGGREGATE,),
        ).fetchone()
        if row and row[0]:
            kind = "cagg"
    if _relation_kind(conn, "readings_hourly") is None:
        raise MigrationError(
            "readings_hourly does not exist yet: on the full TimescaleDB edition the Dagster code location creates "
            "it with its first aggregate run. Run it, then `f2 db migrate --replace-deployment-aggregate` again."
        )
    if kind == "v" and _is_platform_view(conn):
        return False
    # A continuous aggregate is dropped as a materialized view; its refresh policy goes with it.
    drop = {"cagg": "DROP MATERIALIZED VIEW {}", "m": "DROP MATERIALIZED VIEW {}", "v": "DROP VIEW {}"}.get(kind)
    if drop is None:
        raise MigrationError(
            f"{DEPLOYMENT_AGGREGATE} is a {kind!r} relation, not a view or continuous aggregate: left as it is"
        )
    try:
        with conn.transaction():
            conn.execute(sql.SQL(drop).format(sql.Identifier(DEPLOYMENT_AGGREGATE)))
            conn.execute(
                sql.SQL(
                    "CREATE VIEW {} AS SELECT bucket, device_id, datapoint_id, avg_value, min_value, max_value, "
                    "sample_count, first_value, last_value, stddev_value FROM readings_hourly"
                ).format(sql.Identifier(DEPLOYMENT_AGGREGATE))
            )
            conn.execute(
                sql.SQL("COMMENT ON VIEW {} IS {}").format(
                    sql.Identifier(DEPLOYMENT_AGGREGATE), sql.Literal(_PLATFORM_VIEW_COMMENT)
                )
            )
    except psycopg.Error as exc:
        raise MigrationError(
            f"replacing {DEPLOYMENT_AGGREGATE} failed and was rolled back: {str(exc).strip()}"
        ) from exc
    if say is not None:
        say(
            f"{DEPLOYMENT_AGGREGATE}: the deployment's {_REPLACED_KINDS[kind]} was dropped "
            "and replaced, as asked, by a view of readings_hourly (the platform's hourly aggregate and columns)"
        )
    return True


_REPLACED_KINDS: Final = {"cagg": "continuous aggregate", "m": "materialized view", "v": "view"}
_PLATFORM_VIEW_COMMENT: Final = "f2: the platform's readings_hourly under the reference deployment's name"


def _relation_kind(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", (name,)).fetchone()
    return str(row[0]) if row else None


def _is_platform_view(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (DEPLOYMENT_AGGREGATE,)).fetchone()
    return bool(row and row[0] == _PLATFORM_VIEW_COMMENT)
