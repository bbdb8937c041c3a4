"""The machine a run measured: cores, memory, CPU model, and how busy it was with other work."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from f2_platform.settings import REPO_ROOT


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() or None
    if commit and dirty.stdout.strip():
        commit += "+uncommitted"
    return commit


def cpu_probe_s(iterations: int = 2_000_000) -> float:
    """Seconds a fixed pure-Python loop takes on one core: the same work should take the same time, so this
    shows when the host (a virtual machine's neighbours, its CPU frequency) made everything slower."""
    started = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i
    return time.perf_counter() - started


def machine_info() -> dict[str, Any]:
    mem = psutil.virtual_memory()
    load = os.getloadavg()
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem.total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in load],
        "cpu_probe_s_at_start": round(cpu_probe_s(), 4),
        "git_commit": git_commit(),
    }
