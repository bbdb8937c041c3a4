"""The real-time path's daemons as real processes (`f2 bridge|processor|sink`, `f2 certs serve`) for integration
tests; they die with the test session."""

from __future__ import annotations

import os
from pathlib import Path

from f2_platform.stack.daemons import DaemonProcess, pipeline_daemon, start_all, stop_all


class Pipeline:
    def __init__(self, env: dict[str, str], log_dir: Path, processors: int = 1, sinks: int = 1) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        # The enrollment service lets the simulator's devices obtain their certificates (mTLS is the default).
        kinds = [("enroll", 0), ("bridge", 0)]
        kinds += [("processor", i) for i in range(processors)] + [("sink", i) for i in range(sinks)]
        self.daemons: list[DaemonProcess] = [
            pipeline_daemon(kind, i, env, log_dir / f"{kind}-{i}.log", instance="test") for kind, i in kinds
        ]

    def get(self, name: str) -> DaemonProcess:
        return next(d for d in self.daemons if d.name == name)

    def start(self) -> None:
        start_all(self.daemons, timeout=60)

    def restart(self, name: str) -> None:
        d = self.get(name)
        d.start()
        d.wait_healthy()

    def alive(self) -> dict[str, bool]:
        return {d.name: d.alive() for d in self.daemons}

    def stop(self) -> dict[str, int | None]:
        return stop_all(self.daemons)


def env_without_proxy(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy")} | {
        "PYTHONUNBUFFERED": "1",
        "F2_LOG_LEVEL": os.environ.get("F2_LOG_LEVEL", "INFO"),
    }
