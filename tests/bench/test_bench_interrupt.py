"""`f2 bench` stopped with SIGTERM takes its hermetic stack down instead of leaving the services running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

F2 = str(Path(sys.executable).parent / "f2")


def bench_state_dirs() -> set[Path]:
    return set(Path("/tmp").glob("f2-bench-*"))


def processes_under(folders: set[Path]) -> list[str]:
    """Command lines of running processes that name one of the folders or work in one (Redis rewrites its
    command line to its address, but runs in its data folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if any(str(folder) in cmdline or cwd.startswith(str(folder)) for folder in folders):
            found.append(cmdline)
    return found


def test_sigterm_stops_the_run_and_takes_its_stack_down(tmp_path: Path) -> None:
    before = bench_state_dirs()
    log, results = tmp_path / "bench.log", tmp_path / "results"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [F2, "bench", "--stages", "references", "--duration", "60", "--warmup", "1", "--output-dir", str(results)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 180
            while "stage references:" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
            ours = bench_state_dirs() - before
            assert len(ours) == 1, ours
            assert len(processes_under(ours)) >= 4, "the stack's four services should be running during the stage"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 130, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "interrupted" in log.read_text()
    assert processes_under(ours) == []
    assert not any(folder.exists() for folder in ours)
    assert not (results / "latest.json").exists()
