"""`f2 demo up | down`: the whole platform on this machine, as `make demo` runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import click

from f2_platform.settings import StackSettings

F2 = str(Path(sys.executable).parent / "f2")
# name -> (argv after `f2`, the metrics port setting and its default)
PROCESSES: dict[str, tuple[list[str], str | None, int | None]] = {
    "enroll": (["certs", "serve"], None, None),
    "bridge": (["bridge"], "F2_BRIDGE_METRICS_PORT", 9101),
    "processor": (["processor"], "F2_PROCESSOR_METRICS_PORT", 9102),
    "sink": (["sink"], "F2_SINK_METRICS_PORT", 9103),
    "simulator": (["simulate", "--interval", "5"], None, None),
    "dagster": (["dagster", "dev", "--port", "3000"], None, None),
}


@click.group()
def demo() -> None:
    """Run the whole platform locally: stack, schema, sample registry, daemons, simulator, Dagster."""


@demo.command()
@click.option("--without-dagster", is_flag=True, help="Do not start the Dagster UI.")
def up(without_dagster: bool) -> None:
    """Start everything (idempotent) and print where to look."""
    from f2_platform.db.migrations import apply_grants, migrate
    from f2_platform.registry.seed import seed_sample
    from f2_platform.stack import process
    from f2_platform.stack.manager import Stack

    stack = Stack(StackSettings())
    stack.up(click.echo)
    conn = stack.env_settings()
    for target, dsn in (("registry", conn.registry_dsn), ("timeseries", conn.timeseries_dsn)):
        for m in migrate(dsn, target):
            click.echo(f"applied {m.label}")
    apply_grants(conn.timeseries_dsn)
    seed_sample(conn.registry_dsn)
    click.echo("sample registry loaded")
    env = {**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1"}
    for name, (argv, _, _) in PROCESSES.items():
        if name == "dagster" and without_dagster:
            continue
        pidfile = stack.layout.pidfile(f"demo-{name}")
        if process.pid_alive(process.read_pid(pidfile)):
            click.echo(f"{name}: already running")
            continue
        pid = process.spawn([F2, *argv], stack.layout.log(name), pidfile, env=env)
        click.echo(f"{name}: started (pid {pid}), log {stack.layout.log(name)}")
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
    from f2_platform.stack import process
    from f2_platform.stack.manager import Stack

    stack = Stack(StackSettings())
    for name in reversed(PROCESSES):
        pidfile = stack.layout.pidfile(f"demo-{name}")
        pid = process.read_pid(pidfile)
        if process.pid_alive(pid):
            click.echo(f"{name}: stopping (pid {pid})")
            # The daemons run in their own session: signal the group so supervisors and workers both stop.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)  # type: ignore[arg-type]
            process.terminate(pid, signal.SIGTERM, timeout=60)
        pidfile.unlink(missing_ok=True)
    stack.down(click.echo)
