"""`f2 dagster dev | home`: the Dagster UI and daemon on the local stack."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


@click.group("dagster")
def dagster_group() -> None:
    """The Dagster code location (aggregates, storage policy, reprocessing) on the local stack."""


@dagster_group.command("home")
def home() -> None:
    """Prepare DAGSTER_HOME under $F2_STATE_DIR/dagster (SQLite storage) and print its path."""
    from f2_platform.connections import resolve_connections
    from f2_platform.dagster_home import prepare_dagster_home

    click.echo(prepare_dagster_home(resolve_connections().state_dir))


@dagster_group.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the UI listens on.")
@click.option("--port", default=None, type=int, help="Port of the UI (default: F2_DAGSTER_UI_PORT, 3000).")
def dev(host: str, port: int | None) -> None:
    """Run `dagster dev -w workspace.yaml` (UI, daemon, code location) against the local stack."""
    from f2_platform.connections import resolve_connections
    from f2_platform.dagster_home import WORKSPACE, dagster_environment
    from f2_platform.settings import DagsterSettings

    port = port or DagsterSettings().ui_port

    env = dagster_environment(resolve_connections())
    dagster = Path(sys.executable).parent / "dagster"
    click.echo(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={env['DAGSTER_HOME']})")
    os.chdir(WORKSPACE.parent)
    # exec: Ctrl-C and the demo's SIGTERM reach dagster dev itself, which stops its children cleanly.
    os.execve(str(dagster), [str(dagster), "dev", "-w", str(WORKSPACE), "-h", host, "-p", str(port)], env)
