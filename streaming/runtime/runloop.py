"""The run loop every daemon shares: signals, health and metrics endpoints, orderly shutdown.

SIGTERM/SIGINT set a stop flag; the daemon finishes its current batch, makes its output durable, commits and
exits. A second signal exits at once (whatever is not committed will be redelivered).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streaming.runtime.metrics import REGISTRY, UP
from streaming.settings import LogSettings

log = logging.getLogger("f2.runloop")


class Daemon(Protocol):
    name: str

    def start(self, stack: ExitStack) -> None:
        """Connect clients; register their closing on `stack`."""

    def step(self) -> None:
        """One iteration: read a batch, process it, make it durable, commit. Must return within ~1 s."""

    def drain(self) -> None:
        """On stop: finish and commit what is in flight."""

    def health(self) -> tuple[bool, dict[str, object]]:
        """(healthy, details) for /healthz."""


class StopFlag:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signals = 0

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when the stop flag was set."""
        return self._event.wait(seconds)


STOP = StopFlag()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    STOP.signals += 1
    if STOP.signals > 1:
        log.warning("second signal: exiting at once")
        os._exit(130)
    log.info("signal %s: finishing the current batch, then exiting", signal.Signals(signum).name)
    STOP.set()


def configure_logging(daemon: str) -> None:
    """Structured logs: one JSON object per line on stderr."""

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            entry = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "daemon": daemon,
                "logger": record.name,
                "msg": record.getMessage(),
            }
            if record.exc_info:
                entry["exc"] = self.formatException(record.exc_info)
            return json.dumps(entry, ensure_ascii=False)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LogSettings().log_level)


def serve_endpoints(daemon: Daemon, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """/healthz (200 when healthy, 503 otherwise, JSON details) and /metrics (Prometheus)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body = generate_latest(REGISTRY)
                self._reply(200, CONTENT_TYPE_LATEST, body)
            elif self.path.startswith("/healthz"):
                ok, details = daemon.health()
                body = json.dumps({"daemon": daemon.name, "healthy": ok, **details}).encode()
                self._reply(200 if ok else 503, "application/json", body)
            else:
                self._reply(404, "text/plain", b"try /healthz or /metrics\n")

        def _reply(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="endpoints", daemon=True).start()
    return server


def run(daemon: Daemon, metrics_port: int) -> int:
    """Run `daemon` until SIGTERM/SIGINT; returns the process exit status."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # `kill -USR1 <pid>` prints every thread's stack to the log: how an operator sees where a daemon waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    with ExitStack() as stack:
        server = serve_endpoints(daemon, metrics_port)
        stack.callback(server.shutdown)
        daemon.start(stack)
        UP.labels(daemon.name).set(1)
        log.info("%s running; health and metrics on port %d", daemon.name, metrics_port)
        try:
            while not STOP.is_set():
                daemon.step()
            daemon.drain()
        finally:
            UP.labels(daemon.name).set(0)
    log.info("%s stopped cleanly", daemon.name)
    return 0
