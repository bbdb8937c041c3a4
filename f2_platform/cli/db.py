"""`f2 db migrate | seed-sample`."""

from __future__ import annotations

import click


@click.group()
def db() -> None:
    """Schema migrations and the sample registry."""


@db.command()
def migrate() -> None:
    """Apply pending migrations to the registry and the time-series database (re-running is a no-op)."""
    from f2_platform.connections import resolve_connections
    from f2_platform.db.migrations import apply_grants
    from f2_platform.db.migrations import migrate as run

    conn = resolve_connections()
    total = 0
    for target, dsn in (("registry", conn.registry_dsn), ("timeseries", conn.timeseries_dsn)):
        applied = run(dsn, target)
        total += len(applied)
        for migration in applied:
            click.echo(f"applied {migration.label}")
    click.echo(f"{total} migration(s) applied" if total else "nothing to apply: the schema is up to date")
    if conn.registry_dsn == conn.timeseries_dsn and apply_grants(conn.timeseries_dsn):
        click.echo("grants applied to f2_processor, f2_sink, f2_grafana")


@db.command("seed-sample")
def seed_sample() -> None:
    """Load docs/domain.md's sample registry (four controllers, seven wired devices), idempotently."""
    from f2_platform.connections import resolve_connections
    from f2_platform.registry.seed import seed_sample as run

    run(resolve_connections().registry_dsn)
    click.echo("sample registry loaded")
