"""`f2 demo up | down`: the whole platform on this machine, as `make demo` runs it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from f2_platform.cli.params import DURATION, MOMENT
from f2_platform.settings import DagsterSettings, StackSettings

if TYPE_CHECKING:
    from f2_platform.stack.daemons import DaemonProcess
    from f2_platform.stack.manager import Stack

LIVE_INTERVAL_S = 5
# name -> argv after `f2`, in the order they start (the simulator last, after the history) and stop reversed.
PROCESSES: dict[str, list[str]] = {
    "enroll": ["certs", "serve"],
    "bridge": ["bridge"],
    "processor": ["processor"],
    "sink": ["sink"],
    "dagster": ["dagster", "dev"],
    "simulator": ["simulate", "--interval", str(LIVE_INTERVAL_S)],
}
# The real-time path: healthy before any traffic is sent.
PIPELINE = ("enroll", "bridge", "processor", "sink")


@dataclass(frozen=True)
class DemoPort:
    port: int
    setting: str  # what to set when the port is taken
    metrics: bool  # /healthz and /metrics answer there; else the process is healthy once it listens


def demo_ports(stack: Stack) -> dict[str, DemoPort]:
    """The port each listening process of the demo takes, from its settings."""
    from streaming.settings import BridgeSettings, ProcessorSettings, SinkSettings

    return {
        "enroll": DemoPort(stack.settings.enroll_port, "F2_STACK_ENROLL_PORT", metrics=False),
        "bridge": DemoPort(BridgeSettings().metrics_port, "F2_BRIDGE_METRICS_PORT", metrics=True),
        "processor": DemoPort(ProcessorSettings().metrics_port, "F2_PROCESSOR_METRICS_PORT", metrics=True),
        "sink": DemoPort(SinkSettings().metrics_port, "F2_SINK_METRICS_PORT", metrics=True),
        "dagster": DemoPort(DagsterSettings().ui_port, "F2_DAGSTER_UI_PORT", metrics=False),
    }


def demo_process(stack: Stack, name: str, env: dict[str, str] | None = None) -> DaemonProcess:
    """One of the demo's processes: detached (it outlives `f2 demo up`), found again through its pid file in
    the stack's run folder, its log in the stack's logs folder."""
    from f2_platform.stack.daemons import F2, DaemonProcess

    argv = [F2, *PROCESSES[name]]
    port = demo_ports(stack).get(name)
    if name == "dagster" and port is not None:
        argv += ["--port", str(port.port)]
    return DaemonProcess(
        name,
        argv,
        env,
        stack.layout.log(name),
        name,
        metrics_port=port.port if port is not None and port.metrics else None,
        listen_port=port.port if port is not None and not port.metrics else None,
        pidfile=stack.layout.pidfile(f"demo-{name}"),
        detached=True,
        # `f2 dagster dev` execs the venv's dagster: a program of this venv is what a live pid file names.
        cmdline_marker=str(Path(F2).parent),
    )


def _start(stack: Stack, daemon: DaemonProcess) -> None:
    from f2_platform.stack.ports import require_free_port

    if daemon.alive():
        click.echo(f"{daemon.name}: already running")
        return
    port = demo_ports(stack).get(daemon.name)
    if port is not None:
        require_free_port(daemon.name, "127.0.0.1", port.port, port.setting)
    pid = daemon.start()
    click.echo(f"{daemon.name}: started (pid {pid}), log {daemon.log_path}")


@click.group()
def demo() -> None:
    """Run the whole platform locally: stack, schema, sample registry, daemons, simulator, Dagster."""


@demo.command()
@click.option("--without-dagster", is_flag=True, help="Do not start the Dagster UI.")
@click.option(
    "--history",
    type=DURATION,
    default=None,
    help="First send this much past traffic of the sample fleet (e.g. 24h) through the pipeline and materialize "
    "its aggregates, checks and report in Dagster; once per state folder (make demo: 24h).",
)
@click.option(
    "--history-end",
    type=MOMENT,
    default=None,
    help="End of the history window (UTC, ISO 8601; default: now), e.g. a midnight for whole days.",
)
def up(without_dagster: bool, history: timedelta | None, history_end: datetime | None) -> None:
    """Start everything (idempotent), load the history if asked, and print where to look."""
    if history is not None:
        _partitions_from_history(history, history_end)
    from f2_platform.db.migrations import apply_grants, migrate
    from f2_platform.demo.guide import DemoEndpoints, guide, history_lines, stack_exports
    from f2_platform.demo.history import load_history
    from f2_platform.registry.seed import seed_sample
    from f2_platform.stack.daemons import F2
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
    names = [n for n in PROCESSES if n != "simulator" and not (n == "dagster" and without_dagster)]
    daemons = {name: demo_process(stack, name, env) for name in names}
    for daemon in daemons.values():
        _start(stack, daemon)
    for name in PIPELINE:
        daemons[name].wait_healthy(120)
    outcome = load_history(stack, env, history, history_end, click.echo) if history is not None else None
    _start(stack, demo_process(stack, "simulator", env))

    ports = demo_ports(stack)
    activate = Path(F2).parent / "activate"
    endpoints = DemoEndpoints(
        host="127.0.0.1",
        bridge_port=ports["bridge"].port,
        processor_port=ports["processor"].port,
        sink_port=ports["sink"].port,
        dagster_url=None if without_dagster else f"http://127.0.0.1:{ports['dagster'].port}",
        logs=stack.layout.logs,
    )
    lines = history_lines(outcome.record, outcome.loaded_now) if outcome is not None else []
    exports = stack_exports(stack.settings)
    click.echo(guide(endpoints, activate if activate.exists() else None, exports, lines, LIVE_INTERVAL_S))


def _partitions_from_history(length: timedelta, end: datetime | None) -> None:
    """The demo's partitions start on the history's first day (unless F2_DAGSTER_PARTITIONS_START is set), for
    the Dagster processes started here and this one: the UI then shows the loaded days, mostly materialized,
    instead of every hour since the default start. Set before anything defines the partitions."""
    import sys

    from f2_platform.demo.plan import first_day, read_record

    if "partitions_start" in DagsterSettings().model_fields_set:
        return
    if "f2_platform.partitions" in sys.modules:
        raise RuntimeError("the partitions were defined before the demo chose their start")
    day = first_day(read_record(StackSettings().state_dir), datetime.now(UTC), length, end)
    os.environ["F2_DAGSTER_PARTITIONS_START"] = day.isoformat()
    click.echo(f"Dagster partitions start on {day} (the history's first day; F2_DAGSTER_PARTITIONS_START)")


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
