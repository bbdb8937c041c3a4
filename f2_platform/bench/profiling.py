"""py-spy profiles of the daemons during a measurement window, summarised by function.

`py-spy record --format raw` writes collapsed stacks (`frame;frame;... count`); the summary gives each
function's share of the samples as the innermost frame (self) and anywhere on the stack (total). Idle threads
(blocked in librdkafka, in socket reads) are not sampled, so the shares are shares of CPU time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Frames every sample passes through (interpreter start-up, thread bootstrap, the run loop): not findings.
_OUTER = (
    "_run_module_as_main ",
    "_run_code ",
    "<module> ",
    "main (",
    "run (streaming/runloop.py)",
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


def finish(rec: Recording, timeout: float = 60) -> dict[str, Any]:
    try:
        _, err = rec.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        rec.proc.kill()
        _, err = rec.proc.communicate()
    if not rec.path.exists():
        return {"error": (err or b"").decode(errors="replace").strip()[-500:] or "py-spy wrote no profile"}
    summary = summarise(rec.path.read_text(errors="replace"))
    summary["file"] = str(rec.path)
    return summary


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
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [f for f in (_frame_name(x) for x in stack.split(";")) if f is not None]
        if not frames:
            continue
        samples += count
        # py-spy writes the outermost frame first.
        self_counts[frames[-1]] += count
        for f in set(frames):
            if not f.startswith(_OUTER):
                total_counts[f] += count
    if not samples:
        return {"samples": 0, "self": [], "total": []}
    return {
        "samples": samples,
        "self": [(f, round(100 * c / samples, 1)) for f, c in self_counts.most_common(top)],
        "total": [(f, round(100 * c / samples, 1)) for f, c in total_counts.most_common(top + 10)],
    }
