"""Profiles during a measurement window, summarised by function.

- The daemons: `py-spy record --format raw` writes collapsed stacks (`frame;frame;... count`). Idle threads
  (blocked in librdkafka, in socket reads) are not sampled, so the shares are shares of CPU time.
- The database: `perf record -a -g` samples every CPU, and the samples of PostgreSQL's processes (its
  backends, WAL writer, autovacuum) are read back with `perf script`. The sink stage is bound by PostgreSQL,
  so this is the profile that names its bottleneck.

Each summary gives a function's share of the samples as the innermost frame (self) and anywhere on the
stack (total).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Frames every sample passes through (interpreter start-up, thread bootstrap, the run loop): not findings.
_OUTER = (
    "_run_module_as_main ",
    "_run_code ",
    "<module> ",
    "main (",
    "run (streaming/runtime/runloop.py)",
    "Thread._bootstrap",
    "Thread.run ",
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


@dataclass
class Recording:
    name: str
    path: Path
    proc: subprocess.Popen[bytes]
    tool: str = "py-spy"


def start(
    name: str, pid: int, seconds: float, out_dir: Path, rate_hz: int = 100, native: bool = False
) -> Recording | None:
    exe = py_spy()
    if exe is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.collapsed.txt"
    argv = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate_hz),
        "--format",
        "raw",
        "--nolineno",
        "--nonblocking",
        "--output",
        str(path),
    ]
    if native:
        argv.append("--native")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Recording(name, path, proc)


def _wait(rec: Recording, timeout: float) -> bytes:
    """The recorder's standard error once it has exited (killed after `timeout` seconds)."""
    try:
        _, err = rec.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        rec.proc.kill()
        _, err = rec.proc.communicate()
    return err or b""


def finish(rec: Recording, timeout: float = 60) -> dict[str, Any]:
    if rec.tool == "perf":
        return finish_database(rec)
    err = _wait(rec, timeout)
    if not rec.path.exists():
        return {"error": err.decode(errors="replace").strip()[-500:] or "py-spy wrote no profile"}
    summary = summarise(rec.path.read_text(errors="replace"))
    summary["file"] = str(rec.path)
    return summary


def perf() -> str | None:
    return shutil.which("perf")


def start_database(name: str, seconds: float, out_dir: Path, rate_hz: int = 100) -> Recording | None:
    """perf samples of every CPU for `seconds` (as root: perf_event_paranoid stops others seeing all CPUs)."""
    exe = perf()
    if exe is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.perf.data"
    argv = [exe, "record", "--all-cpus", "--call-graph", "fp", "--freq", str(rate_hz), "--output", str(path)]
    argv += ["--quiet", "--", "sleep", str(max(1, round(seconds)))]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Recording(name, path, proc, "perf")


def finish_database(rec: Recording, command: str = "postgres", timeout: float = 120) -> dict[str, Any]:
    """The summary of `command`'s samples in a perf recording."""
    err = _wait(rec, timeout)
    exe = perf()
    if exe is None or not rec.path.exists() or rec.proc.returncode != 0:
        return {"error": err.decode(errors="replace").strip()[-500:] or "perf wrote no profile"}
    script = subprocess.run(
        [exe, "script", "--input", str(rec.path), "--comms", command, "--fields", "comm,ip,sym,dso"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    if script.returncode != 0:
        return {"error": f"perf script failed: {script.stderr.strip()[-500:]}"}
    summary = summarise_perf(script.stdout)
    if not summary["samples"]:
        return {"error": f"perf recorded no samples of {command} (is the database on another host?)"}
    summary["file"] = str(rec.path)
    summary["tool"] = "perf"
    return summary


# Frames every sample of a PostgreSQL process passes through (process start, the query loop, the executor's
# entry points): not findings.
_PG_OUTER = frozenset(
    {
        "_start",
        "__libc_start_main",
        "__libc_start_call_main",
        "main",
        "PostmasterMain",
        "ServerLoop",
        "BackendStartup",
        "BackendRun",
        "PostgresMain",
        "exec_simple_query",
        "PortalRun",
        "PortalRunMulti",
        "PortalRunUtility",
        "ProcessQuery",
        "ProcessUtility",
        "standard_ProcessUtility",
        "standard_ExecutorRun",
        "prev_ProcessUtility",
        "timescaledb_ddl_command_start",
    }
)


# `address symbol (library)`; the library's path may hold parentheses itself ("... (deleted)").
_PERF_FRAME = re.compile(r"^\s*[0-9a-f]+ (?P<symbol>.*?)(?:\+0x[0-9a-f]+)? \((?P<dso>.*)\)\s*$")
UNNAMED = "[unknown]"


def perf_stacks(script: str) -> list[list[str]]:
    """The stacks (outermost frame first) of `perf script --fields comm,ip,sym,dso` output: one header line
    per sample, then one `address symbol (library)` line per frame, innermost first, then a blank line. A
    function without a symbol (static in a stripped binary) is `[unknown] in <library>`."""
    stacks: list[list[str]] = []
    frames: list[str] | None = None
    for line in [*script.splitlines(), ""]:
        if not line.strip():
            if frames is not None:
                stacks.append(frames[::-1])
            frames = None
        elif frames is None:
            frames = []  # the sample's header: the command's name
        else:
            m = _PERF_FRAME.match(line)
            if m is None:
                continue
            symbol = m.group("symbol")
            frames.append(f"{UNNAMED} in {Path(m.group('dso')).name}" if symbol == UNNAMED else symbol)
    return stacks


def summarise_perf(script: str, top: int = 15) -> dict[str, Any]:
    # Unnamed frames count as the innermost function (self) but not in the totals, where every unnamed
    # function of a library would add up to one.
    return _summary(
        ((stack, 1) for stack in perf_stacks(script)),
        lambda frame: frame in _PG_OUTER or frame.startswith(UNNAMED),
        top,
    )


def _frame_name(frame: str) -> str | None:
    m = _FRAME.match(frame.strip())
    if m is None:
        return None
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def summarise(collapsed: str, top: int = 15) -> dict[str, Any]:
    """The summary of py-spy's collapsed stacks (outermost frame first)."""
    stacks = []
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        stacks.append(([f for f in (_frame_name(x) for x in stack.split(";")) if f is not None], count))
    return _summary(stacks, lambda frame: frame.startswith(_OUTER), top)


def _summary(stacks: Iterable[tuple[list[str], int]], outer: Callable[[str], bool], top: int) -> dict[str, Any]:
    """Each function's share of the samples as the innermost frame (self) and anywhere on the stack (total);
    frames every sample passes through (`outer`) are left out of the totals."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks:
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for f in set(frames):
            if not outer(f):
                total_counts[f] += count
    if not samples:
        return {"samples": 0, "self": [], "total": []}
    return {
        "samples": samples,
        "self": [(f, round(100 * c / samples, 1)) for f, c in self_counts.most_common(top)],
        "total": [(f, round(100 * c / samples, 1)) for f, c in total_counts.most_common(top + 10)],
    }
