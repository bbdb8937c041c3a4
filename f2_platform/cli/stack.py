"""`f2 stack up | down | status | env | reset`."""

from __future__ import annotations

import shlex

import click

from f2_platform.settings import StackSettings


def _stack():  # type: ignore[no-untyped-def]
    from f2_platform.stack.manager import Stack

    return Stack(StackSettings())


@click.group()
def stack() -> None:
    """Private local instances of PostgreSQL+TimescaleDB, Redis, Kafka (KRaft) and Mosquitto."""


@stack.command()
def up() -> None:
    """Start every service (preparing data folders on first run) and wait until each answers."""
    s = _stack()
    s.up(click.echo)
    click.echo(f'stack is up; state in {s.settings.state_dir}. Connect with: eval "$(f2 stack env)"')


@stack.command()
def down() -> None:
    """Stop every service cleanly; data stays for the next `up`."""
    _stack().down(click.echo)


@stack.command()
def status() -> None:
    """Each service (each Kafka node), its port, pid and whether it answers; then Kafka's brokers and every
    topic's replication factor, min.insync.replicas and replicas in sync. Exit status 1 when a service does not
    answer or a partition has no leader or a replica out of sync."""
    from f2_platform.stack.kafka_status import describe_kafka, format_kafka_status

    s = _stack()
    rows = s.status()
    click.echo(f"{'service':<10} {'port':>6} {'pid':>8}  state")
    for row in rows:
        state = "answering" if row.answers else ("running, not answering" if row.running else "stopped")
        click.echo(f"{row.name:<10} {row.port:>6} {row.pid or '-':>8}  {state}")
    whole = all(row.answers for row in rows)
    if any(row.answers for row in rows if row.name.startswith("kafka")):
        try:
            lines, kafka_whole = format_kafka_status(
                describe_kafka(s.kafka.client_config(admin=True)), s.kafka.shape.brokers
            )
        except Exception as exc:  # the status is still worth printing when the admin API fails
            lines, kafka_whole = [f"kafka: the admin API did not answer ({exc})"], False
        click.echo("")
        for line in lines:
            click.echo(line)
        whole = whole and kafka_whole
    if not whole:
        raise SystemExit(1)


@stack.command()
def env() -> None:
    """Shell exports for every endpoint: eval "$(f2 stack env)"."""
    for name, value in _stack().env().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@stack.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(yes: bool) -> None:
    """Stop every service and delete the whole state folder (data, logs, secrets, PKI)."""
    s = _stack()
    if not yes:
        click.confirm(f"Delete {s.settings.state_dir} with all its data?", abort=True)
    s.reset(click.echo)
