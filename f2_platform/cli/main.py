"""The `f2` command. Heavy imports stay inside commands so that `f2 stack status` answers at once."""

from __future__ import annotations

import sys
from typing import Any

import click

from f2_platform.errors import F2Error

UNREACHABLE_HINT = (
    "is the platform running (`f2 stack status`), and do the F2_* settings point at it (in a checkout: "
    '`eval "$(f2 stack env)"`; see docs/contracts.md, settings)?'
)


def unreachable(exc: BaseException) -> str | None:
    """One line for a database or Kafka that cannot be reached, or None for any other error. Looked up in
    sys.modules: a command that never imported the client cannot have raised its error, and `f2 stack status`
    stays quick."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        return f"cannot reach the database: {' '.join(str(exc).split())}; {UNREACHABLE_HINT}"
    kafka = sys.modules.get("confluent_kafka")
    if kafka is not None and isinstance(exc, kafka.KafkaException):
        return f"cannot reach Kafka: {exc}; {UNREACHABLE_HINT}"
    return None


class F2Group(click.Group):
    """Turns the platform's own errors, and a database or Kafka out of reach, into one clear line and exit
    status 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except F2Error as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except Exception as exc:
            line = unreachable(exc)
            if line is None:
                raise
            click.secho(f"error: {line}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=F2Group)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """F2 platform: F2 Smart Controllers -> MQTT -> Kafka -> TimescaleDB, orchestrated by Dagster."""
    from f2_platform.cli.context import certs_context

    ctx.obj = certs_context()


# Development tools that live beside the product in a source checkout (`simulator/`, `bench/`) and are not in
# the wheel or the image: their commands are loaded by name when present, so the product never imports them.
DEV_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("simulate", "simulator.cli", "simulate"),
    ("bench", "bench.cli", "bench"),
)


def _dev_command(name: str, module: str, attribute: str) -> click.Command:
    import importlib

    try:
        command = getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise

        @click.command(name=name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def missing() -> None:
            raise F2Error(
                f"`f2 {name}` is a development tool: it runs from a source checkout of the platform "
                f"(make demo / make test install it), not from this installation, which lacks the {module!r} package"
            )

        missing.help = f"(development tool, not installed here: needs a source checkout with {module})"
        return missing
    assert isinstance(command, click.Command)
    return command


def _register() -> None:
    from certs.cli import certs_group
    from f2_platform.cli.credentials import credentials
    from f2_platform.cli.daemons import bridge, processor, sink
    from f2_platform.cli.dagster import dagster_group
    from f2_platform.cli.db import db
    from f2_platform.cli.deadletters import deadletters
    from f2_platform.cli.demo import demo
    from f2_platform.cli.report import report
    from f2_platform.cli.stack import stack
    from f2_platform.cli.trace import trace

    for command in (
        stack,
        db,
        certs_group,
        bridge,
        processor,
        sink,
        demo,
        dagster_group,
        report,
        credentials,
        deadletters,
        trace,
    ):
        cli.add_command(command)
    for name, module, attribute in DEV_COMMANDS:
        cli.add_command(_dev_command(name, module, attribute), name)


_register()
