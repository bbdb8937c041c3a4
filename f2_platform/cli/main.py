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
def cli() -> None:
    """F2 platform: F2 Smart Controllers -> MQTT -> Kafka -> TimescaleDB, orchestrated by Dagster."""


def _register() -> None:
    from f2_platform.cli.db import db
    from f2_platform.cli.stack import stack

    cli.add_command(stack)
    cli.add_command(db)
    try:
        from f2_platform.cli.extra import register_extra
    except ImportError:
        return
    register_extra(cli)


_register()
