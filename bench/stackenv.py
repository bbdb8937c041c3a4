"""The services a run measures: a hermetic stack in a temporary state folder on free ports (the default, like
the test fixtures), or the running `f2 stack`; plus the environment the daemons get."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from f2_platform.errors import StackError
from f2_platform.settings import StackSettings
from f2_platform.stack.hermetic import hermetic_stack_settings, make_state_dir, stack_environment
from f2_platform.stack.manager import Stack
from streaming.settings import ConnectionSettings


@dataclass
class BenchStack:
    stack: Stack
    conn: ConnectionSettings
    env: dict[str, str]
    hermetic: bool

    @property
    def work_dir(self) -> Path:
        return self.stack.settings.state_dir

    def kafka_pids(self) -> list[int]:
        """The running Kafka nodes' pids (one, or three of a cluster)."""
        return [pid for name, pid in self.service_pids().items() if name.startswith("kafka")]

    def service_pids(self) -> dict[str, int]:
        pids = {}
        for service in self.stack.services:
            pid = service.pid()
            if pid is not None and service.running():
                pids[service.name] = pid
        return pids


def prepare(stack: Stack, hermetic: bool) -> BenchStack:
    """Migrations and the daemons' grants applied; the stack's services must be answering."""
    from f2_platform.db.migrations import apply_grants, migrate

    down = [s.name for s in stack.status() if not s.answers]
    if down:
        raise StackError(f"the stack's {', '.join(down)} not answering: start it with `f2 stack up`")
    conn = stack.env_settings()
    migrate(conn.registry_dsn, "registry")
    migrate(conn.timeseries_dsn, "timeseries")
    # The daemons connect as least-privilege roles where the stack created them.
    apply_grants(conn.timeseries_dsn)
    return BenchStack(stack, conn, stack_environment(stack), hermetic)


@contextmanager
def bench_stack(
    use_running: bool,
    partitions: int | None = None,
    say: Callable[[str], None] | None = None,
    kafka_brokers: int = 1,
) -> Iterator[BenchStack]:
    """A prepared stack for one run; a hermetic one is torn down (and its folder removed) afterwards."""
    if use_running:
        yield prepare(Stack(), hermetic=False)  # the settings of `f2 stack` (environment)
        return
    state_dir = make_state_dir("f2-bench-")
    default_partitions = int(StackSettings.model_fields["kafka_partitions"].default)
    stack = Stack(hermetic_stack_settings(state_dir, partitions or default_partitions, kafka_brokers=kafka_brokers))
    try:
        stack.up(say or (lambda _: None))
        yield prepare(stack, hermetic=True)
    finally:
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)
