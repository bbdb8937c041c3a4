"""The `f2` command. Heavy imports stay inside commands so that `f2 stack status` answers at once."""

from __future__ import annotations

import sys
from typing import Any

import click

from f2_platform.errors import F2Error


class F2Group(click.Group):
    """Turns the platform's own errors into one clear line and exit status 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except F2Error as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=F2Group)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """F2 platform: F2 Smart Controllers -> MQTT -> Kafka -> TimescaleDB, orchestrated by Dagster."""
    from f2_platform.cli.context import certs_context

    ctx.obj = certs_context()


def _register() -> None:
    from certs.cli import certs_group
    from f2_platform.cli.bench import bench
    from f2_platform.cli.daemons import bridge, processor, simulate, sink
    from f2_platform.cli.dagster import dagster_group
    from f2_platform.cli.db import db
    from f2_platform.cli.demo import demo
    from f2_platform.cli.report import report
    from f2_platform.cli.stack import stack

    for command in (stack, db, certs_group, bridge, processor, sink, simulate, demo, dagster_group, report, bench):
        cli.add_command(command)


_register()
