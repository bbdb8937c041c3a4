"""Starting, finding and stopping the detached processes of the local stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from f2_platform.errors import PortBusyError, StackError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(service: str, host: str, port: int, setting: str) -> None:
    if not port_is_free(host, port):
        raise PortBusyError(
            f"{service}: port {port} on {host} is busy (another process listens there); "
            f"stop that process or choose another port with {setting}"
        )


_issued: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range, so an outgoing connection cannot take it meanwhile."""
    import random

    for _ in range(1000):
        port = random.randint(20000, 32000)
        if port not in _issued and port_is_free(host, port):
            _issued.add(port)
            return port
    raise PortBusyError(f"no free port found on {host} between 20000 and 32000")


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().split()
        return int(text[0]) if text else None
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int | None, expect_in_cmdline: str | None = None) -> bool:
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
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            # An empty command line is a process still exec-ing its program: alive.
            return not cmdline or expect_in_cmdline in cmdline
    except (FileNotFoundError, IndexError):
        return False
    return True


def spawn(
    argv: Sequence[str],
    log_path: Path,
    pidfile: Path | None,
    *,
    user: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start a process detached from our session, output appended to its log; returns its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        except FileNotFoundError as exc:
            raise StackError(f"cannot start {argv[0]}: not installed (run `make provision`)") from exc
    if pidfile is not None:
        pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def terminate(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Ask a process to stop, wait for it, and kill it only if it ignores the request."""
    if not pid_alive(pid):
        return
    assert pid is not None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if wait_until(lambda: not pid_alive(pid), timeout):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_alive(pid), 5.0)
