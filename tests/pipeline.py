"""The real-time path's daemons as real processes (`f2 bridge|processor|sink`) for integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from f2_platform.stack.process import free_port

F2 = str(Path(sys.executable).parent / "f2")


@dataclass
class DaemonProcess:
    kind: str  # bridge | processor | sink | enroll
    index: int
    env: dict[str, str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}"

    def start(self) -> None:
        env = dict(self.env)
        prefix = f"F2_{self.kind.upper()}_"
        env[prefix + "METRICS_PORT"] = str(self.metrics_port)
        if self.kind == "bridge":
            env["F2_BRIDGE_CLIENT_ID"] = f"f2-bridge-test-{self.index}"
        if self.kind == "processor":
            env["F2_PROCESSOR_INSTANCE_ID"] = f"test-{self.index}"
        argv = [F2, "certs", "serve"] if self.kind == "enroll" else [F2, self.kind]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def healthz(self) -> tuple[int, dict[str, object]]:
        if self.kind == "enroll":
            from f2_platform.stack.process import port_is_free

            return (0 if port_is_free("127.0.0.1", int(self.env["F2_ENROLL_PORT"])) else 200), {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            if self.healthz()[0] == 200:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy after {timeout} s; see {self.log_path}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


class Pipeline:
    def __init__(self, env: dict[str, str], log_dir: Path, processors: int = 1, sinks: int = 1) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        # The enrollment service lets the simulator's devices obtain their certificates (mTLS is the default).
        self.daemons: list[DaemonProcess] = [DaemonProcess("enroll", 0, env, log_dir / "enroll-0.log")]
        self.daemons += [DaemonProcess("bridge", 0, env, log_dir / "bridge-0.log")]
        self.daemons += [DaemonProcess("processor", i, env, log_dir / f"processor-{i}.log") for i in range(processors)]
        self.daemons += [DaemonProcess("sink", i, env, log_dir / f"sink-{i}.log") for i in range(sinks)]

    def get(self, name: str) -> DaemonProcess:
        return next(d for d in self.daemons if d.name == name)

    def start(self) -> None:
        for d in self.daemons:
            d.start()
        for d in self.daemons:
            d.wait_healthy()

    def restart(self, name: str) -> None:
        d = self.get(name)
        d.start()
        d.wait_healthy()

    def alive(self) -> dict[str, bool]:
        return {d.name: d.proc is not None and d.proc.poll() is None for d in self.daemons}

    def stop(self) -> dict[str, int | None]:
        return {d.name: d.stop() for d in self.daemons}


def env_without_proxy(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy")} | {
        "PYTHONUNBUFFERED": "1",
        "F2_LOG_LEVEL": os.environ.get("F2_LOG_LEVEL", "INFO"),
    }
