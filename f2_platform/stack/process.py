"""Transitional: the primitives moved to streaming/runtime/process.py and the ports to
f2_platform/stack/ports.py. Kept importable until f2_platform/stack/services.py imports them there."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from f2_platform.stack.ports import free_port, port_is_free, require_free_port
from streaming.runtime import process
from streaming.runtime.process import pid_alive, read_pid, terminate, wait_until

__all__ = [
    "free_port",
    "pid_alive",
    "port_is_free",
    "read_pid",
    "require_free_port",
    "spawn",
    "terminate",
    "wait_until",
]


def spawn(argv: Sequence[str], log_path: Path, pidfile: Path | None, **options: Any) -> subprocess.Popen[bytes]:
    return process.spawn(argv, log_path, pidfile, detached=True, **options)
