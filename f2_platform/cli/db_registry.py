"""`f2 db check | validate`, and what `f2 db migrate` does for the registry once its migrations ran: the
outstanding violations, the grants in each database, the registry linked into the time-series database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from streaming.settings import ConnectionSettings

Say = Callable[[str], None]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (rules, rows, fixes, constraints, notes).")
@click.option("--registry-only", is_flag=True, help="Check the registry only, not the time-series database.")
def check(as_json: bool, registry_only: bool) -> None:
    """Read-only preflight: every registry row that breaks a rule the platform relies on, grouped by rule, with
    the SQL that repairs it; and whether the time-series database is as the platform needs it.

    Exit status: 0 clean; 1 the platform runs, but the rows listed are dead-lettered or misread until repaired;
    2 the platform cannot run on these databases (a column it reads is missing or of a type it cannot read,
    TimescaleDB is not available, decoded_data cannot be adopted) or a database cannot be reached.
    """
    import psycopg

    from f2_platform.connections import resolve_connections
    from f2_platform.db.registry_check import report_json, run_check

    conn = resolve_connections()
    try:
        report = run_check(conn.registry_dsn, conn.registry_schema, None if registry_only else conn.timeseries_dsn)
    except psycopg.OperationalError as exc:
        click.secho(f"error: cannot connect: {str(exc).strip()}", fg="red", err=True)
        sys.exit(2)
    if as_json:
        click.echo(report_json(report))
    else:
        for line in report.text():
            click.echo(line)
    sys.exit(report.exit_code)


@click.command()
def validate() -> None:
    """Validate the registry constraints `f2 db migrate` left NOT VALID and create the keys it could not, once
    the rows that broke them are repaired (`f2 db check` lists them). Exit status 1 while some rows still do."""
    from f2_platform.connections import resolve_connections
    from f2_platform.db.registry_check import validate as run

    conn = resolve_connections()
    outcomes, remaining = run(conn.registry_dsn, conn.registry_schema)
    changed = [o for o in outcomes if o.result in ("validated", "created")]
    for o in changed:
        click.echo(f"{o.constraint.name}: {o.result}")
    failed = [o for o in outcomes if o.result == "failed"]
    if not failed:
        click.echo(f"every platform constraint of the registry is valid ({len(outcomes)}; {len(changed)} changed now)")
        # Rules no constraint enforces (a wired device's missing template): their rows are still worth a look.
        from f2_platform.db.registry_check import run_check

        for rule, rows in run_check(conn.registry_dsn, conn.registry_schema).by_rule().items():
            click.echo(f"note: rule {rule} still has {len(rows)} row(s) (f2 db check shows them)")
        return
    for o in failed:
        click.secho(f"{o.constraint.name}: still broken (rule {o.constraint.rule}): {o.error}", fg="red", err=True)
    if remaining is not None:
        for rule, rows in remaining.by_rule().items():
            click.echo(f"rule {rule}: {len(rows)} row(s), e.g. {rows[0].table}.{rows[0].key} = {rows[0].id}")
    click.echo("repair them (f2 db check shows each row and its fix), then run f2 db validate again")
    sys.exit(1)


def after_migrations(conn: ConnectionSettings, say: Say) -> None:
    """The registry's part of `f2 db migrate` after the migrations: grants, the link, outstanding violations."""
    from f2_platform.db import registry_link
    from f2_platform.db.migrations import (
        ENROLLMENT_GRANT_ROLES,
        GRANTS_ENROLLMENT,
        GRANTS_REGISTRY,
        REGISTRY_GRANT_ROLES,
        apply_grants,
    )
    from f2_platform.db.registry_check import run_check
    from f2_platform.settings import RegistryLinkSettings

    schema = conn.registry_schema
    # The registry's own grants first: the link may read as the processor's read-only role.
    if registry_link.separate_databases(conn.timeseries_dsn, conn.registry_dsn) and apply_grants(
        conn.registry_dsn, GRANTS_REGISTRY, schema, REGISTRY_GRANT_ROLES
    ):
        say("grants applied to f2_processor in the registry's database")
    registry_link.link_registry(conn.timeseries_dsn, conn.registry_dsn, schema, RegistryLinkSettings().dsn, say)
    if apply_grants(conn.timeseries_dsn, registry_schema=schema):
        say("grants applied to f2_processor, f2_sink, f2_grafana")
    if apply_grants(conn.registry_dsn, GRANTS_ENROLLMENT, schema, ENROLLMENT_GRANT_ROLES):
        say("grants applied to f2_enroll in the registry's database")
    report = run_check(conn.registry_dsn, schema)
    by_rule = report.by_rule()
    outstanding = report.outstanding_constraints()
    if by_rule or outstanding:
        say(
            f"registry: {len(report.violations)} row(s) break {len(by_rule)} rule(s) the platform relies on; "
            f"{len(outstanding)} constraint(s) wait for them (NOT VALID or not created; new writes are checked):"
        )
        for rule, rows in by_rule.items():
            ids = ", ".join(str(v.id) for v in rows[:10]) + (" ..." if len(rows) > 10 else "")
            say(f"  {rule}: {rows[0].table}.{rows[0].key} {ids}")
        say("  repair them (f2 db check shows each row and its fix), then run f2 db validate")
