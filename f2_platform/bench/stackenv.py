"""The services a run measures: a hermetic stack in a temporary state folder on free ports (the default, like
the test fixtures), or the running `f2 stack`; plus the environment the daemons get."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from f2_platform.errors import StackError
from f2_platform.settings import ConnectionSettings, StackSettings
from f2_platform.stack.manager import Stack
from f2_platform.stack.process import free_port


def make_state_dir(prefix: str) -> Path:
    # Services drop to their own users (postgres, mosquitto): the folder must be traversable by them.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def hermetic_stack_settings(state_dir: Path, partitions: int | None = None) -> StackSettings:
    return StackSettings(
        state_dir=state_dir,
        postgres_port=free_port(),
        redis_port=free_port(),
        mqtt_port=free_port(),
        mqtt_tls_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_partitions=partitions or int(StackSettings.model_fields["kafka_partitions"].default),
    )


def stack_environment(stack: Stack) -> dict[str, str]:
    """Environment for a daemon pointed at this stack (and nothing else: no inherited F2_*, no proxies)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("F2_") and k.lower() not in ("http_proxy", "https_proxy")
    }
    s = stack.settings
    env.update(stack.env())
    env.update(
        {
            "F2_STACK_POSTGRES_PORT": str(s.postgres_port),
            "F2_STACK_REDIS_PORT": str(s.redis_port),
            "F2_STACK_MQTT_PORT": str(s.mqtt_port),
            "F2_STACK_MQTT_TLS_PORT": str(s.mqtt_tls_port),
            "F2_STACK_KAFKA_PORT": str(s.kafka_port),
            "F2_STACK_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
            "F2_STACK_KAFKA_PARTITIONS": str(s.kafka_partitions),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class BenchStack:
    stack: Stack
    conn: ConnectionSettings
    env: dict[str, str]
    hermetic: bool

    @property
    def work_dir(self) -> Path:
        return self.stack.settings.state_dir

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
    use_running: bool, partitions: int | None = None, say: Callable[[str], None] | None = None
) -> Iterator[BenchStack]:
    """A prepared stack for one run; a hermetic one is torn down (and its folder removed) afterwards."""
    if use_running:
        yield prepare(Stack(), hermetic=False)  # the settings of `f2 stack` (environment)
        return
    state_dir = make_state_dir("f2-bench-")
    stack = Stack(hermetic_stack_settings(state_dir, partitions))
    try:
        stack.up(say or (lambda _: None))
        yield prepare(stack, hermetic=True)
    finally:
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)
