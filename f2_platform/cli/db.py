"""`f2 db migrate | check | validate | seed-sample`."""

from __future__ import annotations

import click

from f2_platform.cli.db_registry import check, validate


@click.group()
def db() -> None:
    """Schema migrations and the sample registry."""


@db.command()
@click.option(
    "--replace-deployment-aggregate",
    is_flag=True,
    help="Drop the reference deployment's decoded_hourly_stats (continuous aggregate or view) and put a view of "
    "the platform's readings_hourly in its place. Without it, it is left as it is.",
)
def migrate(replace_deployment_aggregate: bool) -> None:
    """Apply pending migrations to the registry and the time-series database (re-running is a no-op).

    An existing decoded_data (the reference deployment's) is adopted: made a hypertable with its rows and keyed,
    its readings without a value kept (docs/migration.md, "Stored readings").
    """
    from f2_platform.cli.db_registry import after_migrations as after_registry_migrations
    from f2_platform.connections import resolve_connections
    from f2_platform.db.migrations import migrate as run

    conn = resolve_connections()
    total = 0
    for target, dsn in (("registry", conn.registry_dsn), ("timeseries", conn.timeseries_dsn)):
        applied = run(dsn, target, say=click.echo, registry_schema=conn.registry_schema)
        total += len(applied)
        for migration in applied:
            click.echo(f"applied {migration.label}")
    click.echo(f"{total} migration(s) applied" if total else "nothing to apply: the schema is up to date")
    if replace_deployment_aggregate:
        import psycopg

        from f2_platform.db import timeseries_adoption as adoption

        with psycopg.connect(conn.timeseries_dsn, autocommit=True, connect_timeout=10) as ts:
            if not adoption.replace_deployment_aggregate(ts, click.echo):
                click.echo(f"{adoption.DEPLOYMENT_AGGREGATE}: nothing to replace")
    after_registry_migrations(conn, click.echo)


@db.command("seed-sample")
def seed_sample() -> None:
    """Load docs/domain.md's sample registry (four controllers, seven wired devices), idempotently."""
    from f2_platform.connections import resolve_connections
    from f2_platform.registry.seed import seed_sample as run

    conn = resolve_connections()
    run(conn.registry_dsn, conn.registry_schema)
    click.echo("sample registry loaded")


db.add_command(check)
db.add_command(validate)
