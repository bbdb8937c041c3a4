"""The real daemons as processes: `python -m streaming.<daemon>`, the worker `f2 <daemon>` supervises (the
supervisor only restarts a hung worker, so it is left out: one process per daemon to sample and profile)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from f2_platform.stack.process import free_port


@dataclass
class Daemon:
    kind: str  # bridge | processor | sink
    index: int
    env: dict[str, str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)  # extra F2_<DAEMON>_* settings
    proc: subprocess.Popen[bytes] | None = None
    terminating: bool = False  # SIGTERM sent to the current process

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.terminating = False
        env = dict(self.env)
        prefix = f"F2_{self.kind.upper()}_"
        env[prefix + "METRICS_PORT"] = str(self.metrics_port)
        if self.kind == "bridge":
            env["F2_BRIDGE_CLIENT_ID"] = f"f2-bridge-bench-{self.index}"
            # A bench bridge's persistent session must not outlive the run and take a share of later traffic.
            env["F2_BRIDGE_SESSION_EXPIRY_S"] = "5"
        if self.kind == "processor":
            env["F2_PROCESSOR_INSTANCE_ID"] = f"bench-{self.index}"
        env.update(self.settings)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"streaming.{self.kind}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as r:
                json.loads(r.read())
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return 0

    def metrics_text(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode if self.proc else None}; "
                    f"last lines of {self.log_path}:\n{self.tail()}"
                )
            if self.healthz() == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"{self.name} not healthy after {timeout:.0f} s; last lines of {self.log_path}:\n{self.tail()}"
        )

    def terminate(self) -> None:
        """Send SIGTERM once: a second signal makes a daemon exit at once, without committing or leaving its
        consumer group (whose members would then linger until their session times out)."""
        if self.proc is not None and self.proc.poll() is None and not self.terminating:
            self.terminating = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM: the daemon finishes its batch, makes it durable, commits and exits."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_all(daemons: list[Daemon], timeout: float = 90) -> None:
    for d in daemons:
        d.start()
    for d in daemons:
        d.wait_healthy(timeout)


def stop_all(daemons: list[Daemon]) -> dict[str, int | None]:
    for d in daemons:
        d.terminate()
    return {d.name: d.stop() for d in daemons}
