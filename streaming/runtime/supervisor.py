"""Crash-only recovery for calls that can hang inside a C library.

librdkafka's send_offsets_to_transaction() can block far past its timeout when the group coordinator goes
away (librdkafka issues 5456 and 5511, open). A blocked C call cannot be interrupted from Python, so a
watchdog ends the worker process with EXIT_HUNG, and the supervisor (the `f2 <daemon>` process itself)
starts a fresh worker at once. That is safe by design: the new worker's init_transactions() fences and
aborts the hung one's transaction, and it resumes from the committed offsets.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

from streaming.runtime.process import spawn

log = logging.getLogger("f2.supervisor")

EXIT_HUNG = 75  # EX_TEMPFAIL
SUPERVISED_ENV = "F2_SUPERVISED"


class Watchdog:
    """Ends the process with EXIT_HUNG when a guarded section overruns its deadline."""

    def __init__(self, check_every_s: float = 1.0) -> None:
        self._deadline: float | None = None
        self._what = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, args=(check_every_s,), name="watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def guard(self, what: str, seconds: float) -> Iterator[None]:
        with self._lock:
            self._deadline, self._what = time.monotonic() + seconds, what
        try:
            yield
        finally:
            with self._lock:
                self._deadline = None

    def _watch(self, every: float) -> None:
        while True:
            time.sleep(every)
            with self._lock:
                overdue = self._deadline is not None and time.monotonic() > self._deadline
                what = self._what
            if overdue:
                restart_worker(f"{what} is hung past its deadline")


def restart_worker(why: str) -> NoReturn:
    """End this worker with EXIT_HUNG (its supervisor starts a fresh one at once), logging why and the stacks."""
    log.error("%s; exiting for a clean restart (stacks follow)", why)
    for handler in logging.getLogger().handlers:
        handler.flush()
    faulthandler.dump_traceback(all_threads=True)
    os._exit(EXIT_HUNG)


def supervise(module: str, env: dict[str, str] | None = None) -> int:
    """Run `python -m module` as a worker with `env` (default: this process's environment); restart it when it
    exits with EXIT_HUNG; forward signals."""
    child: subprocess.Popen[bytes] | None = None
    stopping = threading.Event()

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    env = {**(os.environ if env is None else env), SUPERVISED_ENV: "1"}
    restarts = 0
    while True:
        # The worker must never outlive its supervisor (for example after SIGKILL): it would hold the ports.
        child = spawn([sys.executable, "-m", module], env=env, detached=False, die_with_parent=True)
        code = child.wait()
        if code != EXIT_HUNG or stopping.is_set():
            return code
        restarts += 1
        print(
            f'{{"level": "warning", "msg": "worker {module} hung and exited; restart {restarts}"}}',
            file=sys.stderr,
            flush=True,
        )
        time.sleep(min(5.0, 0.5 * restarts))


def is_supervised() -> bool:
    return os.environ.get(SUPERVISED_ENV) == "1"
