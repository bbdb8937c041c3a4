"""`f2 db check` and `f2 db validate`: the registry (and the time-series database) against the rules the
platform relies on, read-only; then validating the constraints once the rows are repaired.

The rules are data (registry_rules.py, registry_constraints.py, reference_registry.py); this module reads the
catalogs and rows, and the report says what it found: what keeps the platform from running (exit 2), rows it
will dead-letter or misread until they are repaired (exit 1), and notes that change nothing (exit 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict

from f2_platform.db import reference_registry as ref
from f2_platform.db.registry_constraints import CONSTRAINTS, NOT_KEPT, PlatformConstraint, State
from f2_platform.db.registry_rules import RULES, RowRule
from f2_platform.errors import MigrationError
from streaming.registry_schema import in_schema

Say = Callable[[str], None]

# Every column of every table of the schema, as the catalogs say.
_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity <> ''
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = to_regnamespace(%(schema)s) AND c.relkind IN ('r', 'p', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
"""
_CONSTRAINTS_SQL = """
SELECT conname, convalidated FROM pg_constraint WHERE connamespace = to_regnamespace(%(schema)s)
UNION ALL
SELECT c.relname, true FROM pg_class c
WHERE c.relnamespace = to_regnamespace(%(schema)s) AND c.relkind = 'i'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
"""


def location(dsn: str) -> str:
    """host:port/database of a DSN, without credentials."""
    parts = conninfo_to_dict(dsn)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', '5432')}/{parts.get('dbname', '')}"


@dataclass(frozen=True)
class Violation:
    rule: str
    table: str
    key: str
    id: Any
    problem: str
    fix: str


@dataclass(frozen=True)
class Finding:
    """Something about the structure: `cannot-run` keeps the platform from running; a note changes nothing."""

    database: Literal["registry", "timeseries"]
    severity: Literal["cannot-run", "note"]
    subject: str
    message: str
    fix: str | None = None


@dataclass
class CheckReport:
    schema: str
    registry: str
    timeseries: str | None
    findings: list[Finding] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    effects: dict[str, str] = field(default_factory=dict)  # rule -> what the platform does with its rows
    constraints: dict[str, State] = field(default_factory=dict)  # only once the platform's migrations ran

    @property
    def exit_code(self) -> int:
        if any(f.severity == "cannot-run" for f in self.findings):
            return 2
        return 1 if self.violations else 0

    def by_rule(self) -> dict[str, list[Violation]]:
        grouped: dict[str, list[Violation]] = {}
        for v in self.violations:
            grouped.setdefault(v.rule, []).append(v)
        return grouped

    def outstanding_constraints(self) -> dict[str, State]:
        return {name: state for name, state in self.constraints.items() if state != "valid"}

    def to_json(self) -> dict[str, Any]:
        rules_of = {c.name: c.rule for c in CONSTRAINTS}
        return {
            "exit_code": self.exit_code,
            "registry": {"location": self.registry, "schema": self.schema},
            "timeseries": {"location": self.timeseries},
            "cannot_run": [_finding(f) for f in self.findings if f.severity == "cannot-run"],
            "rules": [
                {
                    "rule": rule,
                    "table": rows[0].table,
                    "key": rows[0].key,
                    "effect": self.effects.get(rule, ""),
                    "rows": [{"id": v.id, "problem": v.problem, "fix": v.fix} for v in rows],
                }
                for rule, rows in self.by_rule().items()
            ],
            "constraints": [
                {"name": name, "state": state, "rule": rules_of.get(name)} for name, state in self.constraints.items()
            ],
            "notes": [_finding(f) for f in self.findings if f.severity == "note"],
        }

    def text(self) -> list[str]:
        out = [f'registry: schema "{self.schema}" at {self.registry}']
        if self.timeseries is not None:
            out.append(f"time series: {self.timeseries}")
        fatal = [f for f in self.findings if f.severity == "cannot-run"]
        if fatal:
            out += ["", "CANNOT RUN: the platform cannot read these until they are changed"]
            for f in fatal:
                out.append(f"  {f.database} {f.subject}: {f.message}")
                out += [f"    fix: {line}" for line in (f.fix or "").splitlines()]
        for rule, rows in self.by_rule().items():
            out += ["", f"rule {rule} ({rows[0].table}, {len(rows)} row(s)): {self.effects.get(rule, '')}"]
            for v in rows:
                out.append(f"  {v.table}.{v.key} = {v.id}: {v.problem}")
                out += [f"    fix: {line}" for line in v.fix.splitlines()]
        outstanding = self.outstanding_constraints()
        if outstanding:
            out += ["", "constraints not yet in force (f2 db validate, once the rows above are repaired):"]
            rules_of = {c.name: c.rule for c in CONSTRAINTS}
            out += [
                f"  {name}: {state.replace('-', ' ')} (rule {rules_of[name]})" for name, state in outstanding.items()
            ]
        notes = [f for f in self.findings if f.severity == "note"]
        if notes:
            out += ["", "notes (nothing to do for the platform to run):"]
            for f in notes:
                out.append(f"  {f.database} {f.subject}: {f.message}")
                out += [f"    {line}" for line in (f.fix or "").splitlines()]
        verdict = {
            0: "clean: the platform can run on this registry as it is",
            1: f"{len(self.violations)} row(s) break {len(self.by_rule())} rule(s): the platform runs, and "
            "these rows are dead-lettered or misread (see each rule) until they are repaired",
            2: "the platform cannot run on this database until the CANNOT RUN items are changed",
        }[self.exit_code]
        return [*out, "", f"result: {verdict} (exit {self.exit_code})"]


def _finding(f: Finding) -> dict[str, Any]:
    return {"database": f.database, "subject": f.subject, "message": f.message, "fix": f.fix}


# ------------------------------------------------------------------------------------------ registry


def read_columns(conn: psycopg.Connection, schema: str) -> dict[str, dict[str, ref.FoundColumn]]:
    found: dict[str, dict[str, ref.FoundColumn]] = {}
    for table, column, kind, not_null, default, identity in conn.execute(_COLUMNS_SQL, {"schema": f'"{schema}"'}):
        found.setdefault(str(table), {})[str(column)] = ref.FoundColumn(
            str(kind), bool(not_null), None if default is None else str(default), bool(identity)
        )
    return found


def structure_findings(columns: dict[str, dict[str, ref.FoundColumn]], schema: str) -> list[Finding]:
    """Pure: what the catalogs say about the registry's tables and columns."""
    findings: list[Finding] = []
    if not columns:
        return [
            Finding(
                "registry",
                "note",
                f'schema "{schema}"',
                "holds no registry tables: f2 db migrate creates the reference layout",
            )
        ]
    for table, wanted in ref.READ.items():
        if table not in columns:
            findings.append(Finding("registry", "note", table, "table missing: f2 db migrate creates it"))
            continue
        for column, types in {**wanted, **ref.PLATFORM_READ.get(table, {})}.items():
            found = columns[table].get(column)
            platform_own = column in ref.PLATFORM_READ.get(table, {})
            if found is None:
                if platform_own:
                    findings.append(
                        Finding("registry", "note", f"{table}.{column}", "the platform's column: f2 db migrate adds it")
                    )
                else:
                    findings.append(
                        Finding(
                            "registry",
                            "cannot-run",
                            f"{table}.{column}",
                            "column missing: the platform reads it (docs/domain.md §7)",
                            f'ALTER TABLE "{schema}".{table} ADD COLUMN "{column}" ...  -- see docs/domain.md §7',
                        )
                    )
            elif found.type not in types:
                findings.append(
                    Finding(
                        "registry",
                        "cannot-run",
                        f"{table}.{column}",
                        f"is {found.type}; the platform reads it as one of {', '.join(sorted(types))}",
                        f'ALTER TABLE "{schema}".{table} ALTER COLUMN "{column}" TYPE {sorted(types)[0]} USING ...',
                    )
                )
    for table, column, what in ref.differences(columns):
        if not column:
            if table not in ref.READ:  # the tables the platform reads were reported above
                findings.append(Finding("registry", "note", table, "table missing: f2 db migrate creates it"))
        elif what != "column missing":
            findings.append(
                Finding(
                    "registry",
                    "note",
                    f"{table}.{column}",
                    f"{what} (the reference deployment's tools may write or read it otherwise)",
                )
            )
        elif column not in ref.READ.get(table, {}):
            findings.append(
                Finding("registry", "note", f"{table}.{column}", "column of the reference layout missing (not read)")
            )
    return findings


def read_constraints(conn: psycopg.Connection, schema: str) -> dict[str, State]:
    present = {str(n): bool(v) for n, v in conn.execute(_CONSTRAINTS_SQL, {"schema": f'"{schema}"'}).fetchall()}
    states: dict[str, State] = {}
    for c in CONSTRAINTS:
        if c.name not in present:
            states[c.name] = "missing"
        else:
            states[c.name] = "valid" if present[c.name] else "not-valid"
    return states


def runnable_rules(columns: dict[str, dict[str, ref.FoundColumn]], findings: list[Finding]) -> list[RowRule]:
    """The rules whose tables and columns are there and readable."""
    broken_tables = {f.subject.split(".")[0] for f in findings if f.severity == "cannot-run"}
    return [
        rule
        for rule in RULES
        if rule.tables <= set(columns)
        and not rule.tables & broken_tables
        and all(column in columns.get(table, {}) for table, column in rule.needs)
    ]


def rule_violations(conn: psycopg.Connection, rule: RowRule, schema: str) -> list[Violation]:
    rows = conn.execute(rule.sql(schema)).fetchall()
    return [
        Violation(rule.name, rule.table, rule.key, row[0], rule.problem(row), rule.fix_sql(row, schema)) for row in rows
    ]


def check_registry(conn: psycopg.Connection, schema: str, report: CheckReport) -> None:
    columns = read_columns(conn, schema)
    report.findings += structure_findings(columns, schema)
    migrated = conn.execute("SELECT to_regclass(%s)", (in_schema('"VtDevice".f2_registry_version', schema),))
    if migrated.fetchone() == (None,):
        if columns:
            report.findings.append(
                Finding(
                    "registry",
                    "note",
                    "platform additions",
                    "not applied yet: f2 db migrate adds the platform's columns, keys and constraints (those that "
                    "the rows below break are added NOT VALID) and the change notification",
                )
            )
    else:
        report.constraints = read_constraints(conn, schema)
        for name, why in NOT_KEPT.items():
            if conn.execute(
                "SELECT 1 FROM pg_constraint WHERE connamespace = to_regnamespace(%s) AND conname = %s",
                (f'"{schema}"', name),
            ).fetchone():
                report.findings.append(
                    Finding(
                        "registry",
                        "note",
                        name,
                        f"a foreign key the platform no longer adds ({why}); it was not made by the platform's "
                        "migrations, so it is left to you",
                    )
                )
    for rule in runnable_rules(columns, report.findings):
        report.effects[rule.name] = rule.effect
        report.violations += rule_violations(conn, rule, schema)


# ---------------------------------------------------------------------------------------- time series


def check_timeseries(conn: psycopg.Connection, report: CheckReport) -> None:
    """What f2 db migrate will find in the time-series database (it adopts an existing decoded_data)."""
    from f2_platform.db import timeseries_adoption

    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if not installed:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        if not available:
            report.findings.append(
                Finding(
                    "timeseries",
                    "cannot-run",
                    "extension timescaledb",
                    "is not available on this server; decoded_data is a TimescaleDB hypertable",
                    "install TimescaleDB (2.x) on the server and add it to shared_preload_libraries",
                )
            )
        else:
            report.findings.append(
                Finding("timeseries", "note", "extension timescaledb", "not installed yet: f2 db migrate installs it")
            )
    state = timeseries_adoption.inspect(conn)
    if not state.exists:
        report.findings.append(Finding("timeseries", "note", "decoded_data", "missing: f2 db migrate creates it"))
        return
    problems = timeseries_adoption.column_problems(state)
    for problem in problems:
        report.findings.append(Finding("timeseries", "cannot-run", "decoded_data", problem))
    if problems:
        return
    if not state.hypertable:
        report.findings.append(
            Finding(
                "timeseries",
                "note",
                "decoded_data",
                "a plain table: f2 db migrate makes it a hypertable with its rows (migrate_data)",
            )
        )
    nulls = conn.execute(
        'SELECT count(*) FILTER (WHERE "timestamp" IS NULL OR device_id IS NULL OR datapoint_id IS NULL), '
        "count(*) FILTER (WHERE value IS NULL) FROM decoded_data"
    ).fetchone() or (0, 0)
    if nulls[0]:
        report.findings.append(
            Finding(
                "timeseries",
                "cannot-run",
                "decoded_data",
                f"{nulls[0]} reading(s) without a time, device or datapoint: f2 db migrate refuses to key the table",
                'SELECT * FROM decoded_data WHERE "timestamp" IS NULL OR device_id IS NULL OR datapoint_id IS NULL;'
                "  -- fill the key or move them to a table of your own",
            )
        )
    if state.reading_key is None:
        duplicates = conn.execute(
            'SELECT count(*) FROM (SELECT 1 FROM decoded_data GROUP BY "timestamp", device_id, datapoint_id '
            "HAVING count(*) > 1) AS d"
        ).fetchone() or (0,)
        if duplicates[0]:
            report.findings.append(
                Finding(
                    "timeseries",
                    "cannot-run",
                    "decoded_data",
                    f"{duplicates[0]} reading key(s) (timestamp, device_id, datapoint_id) stored more than once: "
                    "f2 db migrate refuses to key the table",
                    timeseries_adoption.MOVE_DUPLICATES_SQL,
                )
            )
        elif not nulls[0]:
            report.findings.append(
                Finding("timeseries", "note", "decoded_data", "no key on the reading: f2 db migrate adds it")
            )
    if nulls[1]:
        report.findings.append(
            Finding(
                "timeseries",
                "note",
                "decoded_data",
                f"{nulls[1]} reading(s) without a value (NULL) are kept; the data-quality check missing_values "
                "reports them",
            )
        )
    for name, kind in state.deployment_readers():
        report.findings.append(
            Finding("timeseries", "note", name, f"a {kind} on decoded_data: left as it is by f2 db migrate")
        )


# ---------------------------------------------------------------------------------------------- run


def _read_only(dsn: str) -> psycopg.Connection:
    return psycopg.connect(
        dsn,
        autocommit=True,
        connect_timeout=10,
        options="-c default_transaction_read_only=on",
        application_name="f2-check",
    )


def run_check(registry_dsn: str, schema: str, timeseries_dsn: str | None = None) -> CheckReport:
    """Read-only: the registry's (and the time-series database's) state against the platform's rules."""
    report = CheckReport(schema, location(registry_dsn), None if timeseries_dsn is None else location(timeseries_dsn))
    with _read_only(registry_dsn) as conn:
        check_registry(conn, schema, report)
    if timeseries_dsn is not None:
        with _read_only(timeseries_dsn) as conn:
            check_timeseries(conn, report)
    return report


def report_json(report: CheckReport) -> str:
    return json.dumps(report.to_json(), indent=2, default=str)


# ------------------------------------------------------------------------------------------ validate


@dataclass(frozen=True)
class Outcome:
    constraint: PlatformConstraint
    before: State
    result: Literal["valid", "validated", "created", "failed"]
    error: str | None = None


def validate(registry_dsn: str, schema: str) -> tuple[list[Outcome], CheckReport | None]:
    """Validate every NOT VALID platform constraint and create the missing ones, each on its own; a failure
    leaves that one as it was. Returns the outcomes and, when one failed, the check of the rows to repair."""
    outcomes: list[Outcome] = []
    with psycopg.connect(registry_dsn, autocommit=True, connect_timeout=10, application_name="f2-validate") as conn:
        migrated = conn.execute("SELECT to_regclass(%s)", (in_schema('"VtDevice".f2_registry_version', schema),))
        if migrated.fetchone() == (None,):
            raise MigrationError(f'the registry in schema "{schema}" is not migrated yet: run f2 db migrate first')
        states = read_constraints(conn, schema)
        for constraint in CONSTRAINTS:
            before = states[constraint.name]
            if before == "valid":
                outcomes.append(Outcome(constraint, before, "valid"))
                continue
            try:
                with conn.transaction():
                    if before == "missing":
                        conn.execute(constraint.add_sql(schema))
                    if constraint.kind in ("check", "foreign-key"):
                        conn.execute(constraint.validate_sql(schema))
                outcomes.append(Outcome(constraint, before, "created" if before == "missing" else "validated"))
            except psycopg.Error as exc:
                outcomes.append(Outcome(constraint, before, "failed", str(exc).strip().splitlines()[0]))
    failed = [o for o in outcomes if o.result == "failed"]
    return outcomes, (run_check(registry_dsn, schema) if failed else None)
