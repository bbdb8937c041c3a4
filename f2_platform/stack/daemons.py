"""Our long-running processes as objects: start one with its settings, wait until /healthz says it is healthy,
read its metrics, signal, kill or stop it. `f2 demo`, the tests' pipeline and the bench all use this class.

A detached daemon (`f2 demo up`) runs in its own session, survives the command that started it and is found
again by a later command through its pid file; stopping it stops its process group. Any other daemon is tied
to the process that started it (the kernel kills it when that thread ends), as the tests' and the bench's are.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from f2_platform.stack.ports import free_port, port_is_free
from streaming.runtime import process

F2 = str(Path(sys.executable).parent / "f2")
# The real-time path's daemons: `f2 <kind>` supervises the worker `python -m streaming.<kind>`.
PIPELINE_KINDS = ("bridge", "processor", "sink")


@dataclass
class DaemonProcess:
    name: str
    argv: list[str]
    env: Mapping[str, str] | None
    log_path: Path
    kind: str = ""
    # /healthz and /metrics answer here; without one, a daemon listening on `listen_port` is healthy once that
    # port is taken, and any other once it runs.
    metrics_port: int | None = None
    listen_port: int | None = None
    pidfile: Path | None = None
    detached: bool = False
    # Text the command line of the pid in `pidfile` must hold to be this daemon (default: the program).
    cmdline_marker: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _terminating: bool = field(default=False, init=False, repr=False)  # SIGTERM sent to the current process

    @property
    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        return process.read_pid(self.pidfile) if self.pidfile is not None else None

    def running_pid(self) -> int:
        """The pid of the running daemon (to sample or profile it); RuntimeError when it does not run."""
        pid = self.pid
        if pid is None or not self.alive():
            raise RuntimeError(f"{self.name} is not running; last lines of {self.log_path}:\n{self.tail()}")
        return pid

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        # Found through its pid file: alive only if that pid still runs our program.
        return process.pid_alive(self.pid, self.cmdline_marker or self.argv[0])

    def start(self) -> int:
        self.proc = process.spawn(
            self.argv,
            self.log_path,
            self.pidfile,
            env=self.env,
            detached=self.detached,
            die_with_parent=not self.detached,
        )
        self._terminating = False
        return self.proc.pid

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of /healthz; 0 when nothing answers."""
        if self.metrics_port is None:
            if self.listen_port is not None:
                return (0 if port_is_free("127.0.0.1", self.listen_port) else 200), {}
            return (200 if self.alive() else 0), {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as r:
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as e:
            with contextlib.suppress(ValueError):
                return int(e.code), json.loads(e.read() or b"{}")
            return int(e.code), {}
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return 0, {}

    def metrics(self) -> str | None:
        """The Prometheus text of /metrics, or None when nothing answers."""
        if self.metrics_port is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc is not None else None
                raise RuntimeError(f"{self.name} exited with {code}; last lines of {self.log_path}:\n{self.tail()}")
            if self.healthz()[0] == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"{self.name} not healthy after {timeout:.0f} s; last lines of {self.log_path}:\n{self.tail()}"
        )

    def signal(self, sig: int) -> None:
        pid = self.pid
        if pid is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def terminate(self) -> None:
        """Send SIGTERM once: a second signal makes our daemons exit at once, without committing or leaving
        their consumer group (whose members would then linger until their session times out)."""
        if not self._terminating and self.alive():
            self._terminating = True
            self.signal(signal.SIGTERM)

    def _ours(self, pid: int) -> bool:
        # A pid file can outlive its process, and the pid be reused by an unrelated one: leave that alone. A
        # pid that runs nothing may still name the process group of our leader's orphaned children (the kernel
        # reuses no pid while a group of that id exists).
        return self.proc is not None or self.alive() or not process.pid_alive(pid)

    def kill(self) -> None:
        pid = self.pid
        if pid is None or not self._ours(pid):
            return
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)
        else:
            process.wait_until(lambda: not self.alive(), 30)
        if self.detached:
            process.stop_group(pid)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (our daemons finish their batch, make it durable, commit and exit), SIGKILL after `timeout`;
        a detached daemon's process group goes with it and its pid file is removed. Returns the exit status
        when this process started it."""
        pid = self.pid
        if pid is None:
            return None
        code: int | None = None
        if self._ours(pid):
            self.terminate()
            if self.proc is not None:
                try:
                    code = self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            elif not process.wait_until(lambda: not self.alive(), timeout):
                self.signal(signal.SIGKILL)
                process.wait_until(lambda: not self.alive(), 10)
            if self.detached:
                process.stop_group(pid)
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)
        return code

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def pipeline_daemon(
    kind: str,
    index: int,
    env: Mapping[str, str],
    log_path: Path,
    *,
    instance: str,
    worker_only: bool = False,
    settings: Mapping[str, str] | None = None,
) -> DaemonProcess:
    """A bridge, processor or sink (`f2 <kind>`, supervised), or the enrollment service (`enroll`: `f2 certs
    serve`), on a free metrics port, tied to this process.

    `instance` names the run ("test", "bench"): it goes into the bridge's MQTT client id (its persistent
    session) and the processor's transactional id, so no two runs share them. worker_only runs the worker
    `python -m streaming.<kind>` without its supervisor: one process to sample and profile. `settings` are
    extra F2_* variables.
    """
    env = dict(env)
    if kind == "enroll":
        return DaemonProcess(
            f"{kind}-{index}", [F2, "certs", "serve"], env, log_path, kind, listen_port=int(env["F2_ENROLL_PORT"])
        )
    if kind not in PIPELINE_KINDS:
        raise ValueError(f"unknown daemon kind {kind!r}: expected one of {', '.join(PIPELINE_KINDS)} or enroll")
    metrics_port = free_port()
    env[f"F2_{kind.upper()}_METRICS_PORT"] = str(metrics_port)
    if kind == "bridge":
        env["F2_BRIDGE_CLIENT_ID"] = f"f2-bridge-{instance}-{index}"
    if kind == "processor":
        env["F2_PROCESSOR_INSTANCE_ID"] = f"{instance}-{index}"
    env.update(settings or {})
    argv = [sys.executable, "-m", f"streaming.{kind}"] if worker_only else [F2, kind]
    return DaemonProcess(f"{kind}-{index}", argv, env, log_path, kind, metrics_port=metrics_port)


def start_all(daemons: list[DaemonProcess], timeout: float = 90) -> None:
    for d in daemons:
        d.start()
    for d in daemons:
        d.wait_healthy(timeout)


def stop_all(daemons: list[DaemonProcess]) -> dict[str, int | None]:
    """SIGTERM to all first, so they drain together, then wait for each."""
    for d in daemons:
        d.terminate()
    return {d.name: d.stop() for d in daemons}
