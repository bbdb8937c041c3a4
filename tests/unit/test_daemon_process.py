"""Running and stopping processes (streaming/runtime/process.py, f2_platform/stack/daemons.py) with real
processes: detached daemons outlive their starter and are stopped with their process group through their pid
file; tied ones die with the thread that started them; a stop sends one SIGTERM and kills only when ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from f2_platform.stack.daemons import DaemonProcess, stop_all
from streaming.runtime import process

PY = sys.executable


def _gone(pid: int, timeout: float = 10) -> bool:
    return process.wait_until(lambda: not process.pid_alive(pid), timeout, 0.05)


def _script(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_a_detached_daemon_is_found_again_and_stopped_with_its_group(tmp_path: Path) -> None:
    # The leader starts a child in its own process group and ignores SIGTERM's effect on it: only stopping the
    # group ends the child, as `f2 demo down` must for `f2 dagster dev`'s children.
    child_pidfile = tmp_path / "child.pid"
    leader = _script(
        tmp_path,
        "leader.py",
        f"""
        import signal, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(child_pidfile)!r}, "w").write(str(child.pid))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        time.sleep(120)
        """,
    )
    pidfile = tmp_path / "run" / "demo-x.pid"
    daemon = DaemonProcess("x", [PY, leader], None, tmp_path / "logs" / "x.log", pidfile=pidfile, detached=True)
    pid = daemon.start()
    try:
        assert process.read_pid(pidfile) == pid
        assert os.getsid(pid) == pid, "a detached daemon leads a session of its own"
        assert process.wait_until(child_pidfile.exists, 10, 0.05)
        child = int(child_pidfile.read_text())
        # A later command knows only the pid file.
        again = DaemonProcess("x", [PY, leader], None, tmp_path / "logs" / "x.log", pidfile=pidfile, detached=True)
        assert again.alive() and again.pid == pid
        assert again.stop(timeout=10) is None  # not its child: no exit status to report
        assert _gone(child), "the leader's child was left running"
        assert not pidfile.exists()
    finally:
        daemon.kill()


def test_a_pid_file_naming_another_program_is_left_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = tmp_path / "stale.pid"
        pidfile.write_text(f"{other.pid}\n")
        daemon = DaemonProcess("x", [PY, "-c", "pass"], None, tmp_path / "x.log", pidfile=pidfile, detached=True)
        assert not daemon.alive()
        daemon.stop(timeout=1)
        daemon.kill()
        assert other.poll() is None, "an unrelated process that reused the pid was signalled"
        assert not pidfile.exists()
    finally:
        other.kill()
        other.wait()


def test_a_program_caught_between_exec_and_its_arguments_is_not_taken_for_ours() -> None:
    # Right after Popen returns, /proc/<pid>/cmdline can read empty for an instant (the program is exec'd, its
    # arguments not yet set up); the CI once took such an unrelated `sleep` for our daemon.
    # Before the fix, 8 of 3,000 such checks here took the `sleep` for ours.
    for _ in range(1000):
        other = subprocess.Popen(["sleep", "60"])
        try:
            assert not process.pid_alive(other.pid, PY)
            assert process.pid_alive(other.pid, "sleep")
        finally:
            other.kill()
            other.wait()


def test_a_kernel_thread_is_nobodys_daemon() -> None:
    # A kernel thread's command line is always empty: a pid file naming one is stale.
    kthreads = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _flags(entry) & 0x00200000  # PF_KTHREAD
    ]
    if not kthreads:
        pytest.skip("no kernel thread is visible in this pid namespace")
    assert process.pid_alive(kthreads[0])
    assert not process.pid_alive(kthreads[0], PY)


def _flags(proc_entry: Path) -> int:
    try:
        return int((proc_entry / "stat").read_text().rsplit(")", 1)[1].split()[6])
    except (FileNotFoundError, IndexError, ValueError):
        return 0


def test_a_tied_daemon_dies_with_the_thread_that_started_it(tmp_path: Path) -> None:
    starter = _script(
        tmp_path,
        "starter.py",
        f"""
        from pathlib import Path
        from f2_platform.stack.daemons import DaemonProcess
        d = DaemonProcess("t", ["sleep", "120"], None, Path({str(tmp_path / "t.log")!r}))
        print(d.start(), flush=True)
        """,
    )
    out = subprocess.run([PY, starter], capture_output=True, text=True, timeout=60, check=True, cwd=os.getcwd())
    pid = int(out.stdout.split()[0])
    assert _gone(pid), "a daemon tied to its starter outlived it"


def test_stop_sends_one_sigterm_and_kills_only_what_ignores_it(tmp_path: Path) -> None:
    counting = _script(
        tmp_path,
        "counting.py",
        """
        import signal, sys, time
        seen = []
        def on_term(*_):
            seen.append(1)
            print(f"SIGTERM {len(seen)}", flush=True)
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        while not seen:
            time.sleep(0.01)
        time.sleep(0.5)  # a second SIGTERM would arrive meanwhile
        sys.exit(3)
        """,
    )
    stubborn = _script(
        tmp_path,
        "stubborn.py",
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(120)
        """,
    )
    polite = DaemonProcess("polite", [PY, counting], None, tmp_path / "polite.log")
    deaf = DaemonProcess("deaf", [PY, stubborn], None, tmp_path / "deaf.log")
    for d in (polite, deaf):
        d.start()
        assert process.wait_until(lambda d=d: "ready" in d.tail(), 10, 0.05), d.tail()
    started = time.monotonic()
    polite.terminate()
    codes = {"polite": polite.stop(), "deaf": deaf.stop(timeout=1)}
    assert codes["polite"] == 3
    assert (tmp_path / "polite.log").read_text().count("SIGTERM") == 1
    assert codes["deaf"] is None and deaf.proc is not None and deaf.proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 30
    # stop_all on stopped daemons is a no-op that reports their state
    assert stop_all([polite]) == {"polite": 3}
