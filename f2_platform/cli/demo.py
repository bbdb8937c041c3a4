"""`f2 demo up | down`: the whole platform on this machine, as `make demo` runs it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from f2_platform.settings import StackSettings

if TYPE_CHECKING:
    from f2_platform.stack.daemons import DaemonProcess
    from f2_platform.stack.manager import Stack

# name -> (argv after `f2`, the metrics port setting and its default)
PROCESSES: dict[str, tuple[list[str], str | None, int | None]] = {
    "enroll": (["certs", "serve"], None, None),
    "bridge": (["bridge"], "F2_BRIDGE_METRICS_PORT", 9101),
    "processor": (["processor"], "F2_PROCESSOR_METRICS_PORT", 9102),
    "sink": (["sink"], "F2_SINK_METRICS_PORT", 9103),
    "simulator": (["simulate", "--interval", "5"], None, None),
    "dagster": (["dagster", "dev", "--port", "3000"], None, None),
}


def demo_process(stack: Stack, name: str, env: dict[str, str] | None = None) -> DaemonProcess:
    """One of the demo's processes: detached (it outlives `f2 demo up`), found again through its pid file in
    the stack's run folder, its log in the stack's logs folder."""
    from f2_platform.stack.daemons import F2, DaemonProcess

    argv, port_setting, default_port = PROCESSES[name]
    metrics_port = None
    if port_setting is not None and default_port is not None:
        metrics_port = int((env or os.environ).get(port_setting, default_port))
    return DaemonProcess(
        name,
        [F2, *argv],
        env,
        stack.layout.log(name),
        name,
        metrics_port=metrics_port,
        pidfile=stack.layout.pidfile(f"demo-{name}"),
        detached=True,
        # `f2 dagster dev` execs the venv's dagster: a program of this venv is what a live pid file names.
        cmdline_marker=str(Path(F2).parent),
    )


@click.group()
def demo() -> None:
    """Run the whole platform locally: stack, schema, sample registry, daemons, simulator, Dagster."""


@demo.command()
@click.option("--without-dagster", is_flag=True, help="Do not start the Dagster UI.")
def up(without_dagster: bool) -> None:
    """Start everything (idempotent) and print where to look."""
    from f2_platform.db.migrations import apply_grants, migrate
    from f2_platform.registry.seed import seed_sample
    from f2_platform.stack.manager import Stack

    stack = Stack(StackSettings())
    stack.up(click.echo)
    conn = stack.env_settings()
    for target, dsn in (("registry", conn.registry_dsn), ("timeseries", conn.timeseries_dsn)):
        for m in migrate(dsn, target, registry_schema=conn.registry_schema):
            click.echo(f"applied {m.label}")
    apply_grants(conn.timeseries_dsn, registry_schema=conn.registry_schema)
    seed_sample(conn.registry_dsn, conn.registry_schema)
    click.echo("sample registry loaded")
    env = {**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1"}
    for name in PROCESSES:
        if name == "dagster" and without_dagster:
            continue
        daemon = demo_process(stack, name, env)
        if daemon.alive():
            click.echo(f"{name}: already running")
            continue
        pid = daemon.start()
        click.echo(f"{name}: started (pid {pid}), log {daemon.log_path}")
    s = stack.settings
    dagster_note = (
        "not started (--without-dagster)"
        if without_dagster
        else "http://127.0.0.1:3000 (assets, checks, schedules; answers once the code location loaded, ~1 min)"
    )
    click.echo(f"""
The F2 platform is running. Where to look:
  readings:   eval "$(f2 stack env)"; psql "$F2_TIMESERIES_DSN" -c 'TABLE latest_values'
  metrics:    http://127.0.0.1:9101/metrics (bridge), :9102 (processor), :9103 (sink); /healthz on each
  Dagster UI: {dagster_note}
  logs:       {stack.layout.logs}/
  endpoints:  eval "$(f2 stack env)"   (MQTT {s.host}:{s.mqtt_port}, Kafka {stack.kafka.bootstrap})
Stop with: make stop   (f2 demo down; data stays for the next make demo)""")


@demo.command()
def down() -> None:
    """Stop the daemons, the simulator, Dagster and the stack; data stays."""
    from f2_platform.stack.manager import Stack

    stack = Stack(StackSettings())
    for name in reversed(PROCESSES):
        daemon = demo_process(stack, name)
        if daemon.alive():
            click.echo(f"{name}: stopping (pid {daemon.pid})")
        # One SIGTERM to the leader (a supervisor forwards it to its worker), then whatever is left of its
        # process group; a pid file whose process is gone is removed.
        daemon.stop(timeout=60)
    stack.down(click.echo)
