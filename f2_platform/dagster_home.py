"""The local Dagster instance: DAGSTER_HOME under $F2_STATE_DIR/dagster, with SQLite storage there.

Production uses deploy/dagster/dagster.yaml (PostgreSQL storage) instead; nothing here runs in production.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from f2_platform.settings import PROJECT_DIR
from streaming.settings import ConnectionSettings

WORKSPACE = PROJECT_DIR / "workspace.yaml"


def dagster_home(state_dir: Path) -> Path:
    return state_dir / "dagster"


def instance_config(home: Path) -> dict[str, object]:
    """dagster.yaml of the local instance: everything (runs, events, schedules, logs) under `home`."""
    return {
        "storage": {"sqlite": {"base_dir": str(home / "storage")}},
        "local_artifact_storage": {
            "module": "dagster._core.storage.root",
            "class": "LocalArtifactStorage",
            "config": {"base_dir": str(home)},
        },
        "compute_logs": {
            "module": "dagster._core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(home / "logs")},
        },
        # Few runs at once on a laptop: the database, Kafka and the daemons share it.
        "run_queue": {"max_concurrent_runs": 4},
        "telemetry": {"enabled": False},
        # No "join the community" dialog over the demo's UI.
        "nux": {"enabled": False},
    }


def prepare_dagster_home(state_dir: Path) -> Path:
    """Creates (or refreshes) DAGSTER_HOME under the state folder and returns it. Idempotent."""
    home = dagster_home(state_dir)
    (home / "storage").mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    config = yaml.safe_dump(instance_config(home), sort_keys=False)
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != config:
        target.write_text(config)
    return home


def connection_environment(conn: ConnectionSettings) -> dict[str, str]:
    """The F2_* variables of docs/contracts.md for `conn`, for the Dagster processes started from the CLI."""
    env = {}
    for name, value in conn.model_dump().items():
        if value is not None:
            env[f"F2_{name.upper()}"] = str(value)
    return env


def dagster_environment(conn: ConnectionSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for `dagster dev` / `dagster-webserver`: settings resolved once, DAGSTER_HOME prepared, and
    this interpreter's scripts first on PATH (dagster-dbt runs `dbt parse` by name when the code location
    loads under `dagster dev`; `f2` may be run from a virtualenv that was never activated)."""
    env = dict(os.environ if base is None else base)
    env.update(connection_environment(conn))
    env["DAGSTER_HOME"] = str(prepare_dagster_home(conn.state_dir))
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != scripts)])
    return env
