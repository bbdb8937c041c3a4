"""The bench's daemons: the worker `python -m streaming.<daemon>` that `f2 <daemon>` supervises, run alone
(the supervisor only restarts a hung worker, so it is left out: one process per daemon to sample and profile)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from f2_platform.stack.daemons import DaemonProcess, pipeline_daemon


def bench_daemon(kind: str, index: int, env: Mapping[str, str], log_path: Path) -> DaemonProcess:
    # A bench bridge's persistent session must not outlive the run and take a share of later traffic: its stop
    # ends it, and one killed expires in 5 s. (With the expiry alone, a full test run lost the first of a
    # test's messages, dealt to the session of the bench run before it in its last seconds.)
    ephemeral = {"F2_BRIDGE_SESSION_EXPIRY_S": "5", "F2_BRIDGE_END_SESSION_ON_EXIT": "true"}
    settings = ephemeral if kind == "bridge" else None
    return pipeline_daemon(kind, index, env, log_path, instance="bench", worker_only=True, settings=settings)
