"""Where the code location runs: `local` (a laptop with `f2 stack`), `ci` or `prod`.

The one place that decides what differs between them:
- connection settings: locally the environment first and the local stack for whatever it leaves unset
  (`resolve_connections`); in CI and production only the environment (`ConnectionSettings`), so a
  missing variable fails loudly instead of silently pointing at a laptop stack;
- whether schedules and sensors start running when the code location loads.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import dagster as dg

from f2_platform.settings import DagsterSettings
from streaming.settings import ConnectionSettings

Environment = Literal["local", "ci", "prod"]
Status = TypeVar("Status", dg.DefaultScheduleStatus, dg.DefaultSensorStatus)


def get_environment() -> Environment:
    return DagsterSettings().environment


def connection_settings(environment: Environment | None = None) -> ConnectionSettings:
    """The F2_* connection settings of docs/contracts.md as this environment resolves them."""
    if (environment or get_environment()) == "local":
        from f2_platform.connections import resolve_connections

        return resolve_connections()
    return ConnectionSettings()


def automation_runs_by_default(environment: Environment | None = None) -> bool:
    """Whether schedules and sensors start RUNNING: never in CI, where nothing should launch on its own."""
    return (environment or get_environment()) != "ci"


def default_status(kind: type[Status], environment: Environment | None = None) -> Status:
    """The `default_status` of every schedule (`dg.DefaultScheduleStatus`) and sensor (`dg.DefaultSensorStatus`)
    of the code location: RUNNING, except in CI (see automation_runs_by_default)."""
    return kind.RUNNING if automation_runs_by_default(environment) else kind.STOPPED
