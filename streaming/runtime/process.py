"""Starting and stopping processes: the one set of primitives behind the daemons' supervisor, the local stack's
services, `f2 demo`, the tests' and the bench's daemons.

A process is started either tied to us (it is killed when the thread that started it ends, so nothing outlives
a test session or a supervisor killed with SIGKILL) or detached (its own session: it survives the command that
started it, is found again through its pid file, and is stopped with its whole process group).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGKILL when the parent thread ends.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str],
    log_path: Path | None = None,
    pidfile: Path | None = None,
    *,
    detached: bool,
    die_with_parent: bool = False,
    user: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdin from /dev/null and its output appended to `log_path` (inherited when None).

    detached (every caller says): in a session of its own, so it survives our exit and our terminal's signals.
    die_with_parent: SIGKILLed by the kernel when the thread that started it ends. The pid is written to
    `pidfile` when given. FileNotFoundError when the program is not installed.
    """
    log = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - the child holds its own descriptor; ours is closed below
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=detached,
            preexec_fn=_die_with_parent if die_with_parent else None,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    finally:
        if log is not None:
            log.close()
    if pidfile is not None:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{proc.pid}\n")
    return proc


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().split()
        return int(text[0]) if text else None
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int | None, expect_in_cmdline: str | None = None) -> bool:
    """Whether `pid` runs (a zombie does not); with `expect_in_cmdline`, only if its command line holds that
    text, so a pid file left behind never names an unrelated process that reused the pid."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if expect_in_cmdline is not None:
            cmdline = _cmdline(pid)
            return expect_in_cmdline in cmdline
    except (FileNotFoundError, IndexError):
        return False
    return True


def _cmdline(pid: int, settle: float = 1.0) -> str:
    """The command line of `pid`. It reads empty in the instant between a program's exec and the kernel's
    setting up its arguments (seen right after `Popen` returns, under load): wait that out rather than take
    the process for anyone's. Still empty after `settle` seconds, it is a kernel thread, nobody's daemon."""
    deadline = time.monotonic() + settle
    while True:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        if raw or time.monotonic() >= deadline:
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.005)


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` still runs (zombies, which no signal ends, do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command's closing parenthesis: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def terminate(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 30.0, *, group: bool = False) -> None:
    """Ask a process to stop with one `sig`, wait up to `timeout` for it, and SIGKILL it only if it ignores the
    request. group: the process leads a session of its own (spawned detached); once it is gone, what is left
    of its process group (children it did not stop) gets SIGTERM, then SIGKILL."""
    if pid is not None and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if not wait_until(lambda: not pid_alive(pid), timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 5.0)
    if group and pid is not None:
        stop_group(pid)


def stop_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM every process left in group `pgid`, then SIGKILL those still there after `timeout`."""
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not group_alive(pgid):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        wait_until(lambda: not group_alive(pgid), wait_s)
