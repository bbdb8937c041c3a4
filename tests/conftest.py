"""Session fixtures: the same real services as `f2 stack`, started hermetically (temporary state folder,
free ports) through the same code, and torn down afterwards. Tests never touch a running `f2 stack up`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from f2_platform.settings import ConnectionSettings, StackSettings
from f2_platform.stack.manager import Stack
from f2_platform.stack.process import free_port

REPO = Path(__file__).resolve().parents[1]


def make_state_dir(prefix: str) -> Path:
    # Services drop to their own users (postgres, mosquitto), so the folder must be traversable by them.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def hermetic_stack_settings(state_dir: Path) -> StackSettings:
    return StackSettings(
        state_dir=state_dir,
        postgres_port=free_port(),
        redis_port=free_port(),
        mqtt_port=free_port(),
        mqtt_tls_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        enroll_port=free_port(),
        kafka_partitions=4,
    )


def stack_environment(stack: Stack) -> dict[str, str]:
    """Environment for a subprocess (`f2 ...`, a daemon) pointed at this stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2_")}
    s = stack.settings
    env.update(stack.env())
    env.update({
        "F2_STACK_POSTGRES_PORT": str(s.postgres_port),
        "F2_STACK_REDIS_PORT": str(s.redis_port),
        "F2_STACK_MQTT_PORT": str(s.mqtt_port),
        "F2_STACK_MQTT_TLS_PORT": str(s.mqtt_tls_port),
        "F2_STACK_KAFKA_PORT": str(s.kafka_port),
        "F2_STACK_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
        "F2_STACK_KAFKA_PARTITIONS": str(s.kafka_partitions),
        "F2_STACK_ENROLL_PORT": str(s.enroll_port),
    })
    return env


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    state_dir = make_state_dir("f2-test-stack-")
    s = Stack(hermetic_stack_settings(state_dir))
    try:
        s.up()
        yield s
    finally:
        s.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def connections(stack: Stack) -> ConnectionSettings:
    return stack.env_settings()


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    return stack_environment(stack)


@pytest.fixture(scope="session")
def migrated(connections: ConnectionSettings) -> ConnectionSettings:
    """The stack with every migration applied and the sample registry loaded."""
    from f2_platform.db.migrations import apply_grants, migrate
    from f2_platform.registry.seed import seed_sample

    migrate(connections.registry_dsn, "registry")
    migrate(connections.timeseries_dsn, "timeseries")
    assert apply_grants(connections.timeseries_dsn), "the stack did not create the daemons' roles"
    seed_sample(connections.registry_dsn)
    return connections


@pytest.fixture()
def pg(migrated: ConnectionSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def pipeline(migrated: ConnectionSettings, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """Bridge, processor and sink running as real processes against the session stack."""
    from tests.pipeline import Pipeline, env_without_proxy

    p = Pipeline(env_without_proxy(stack_env), tmp_path_factory.mktemp("daemons"))
    p.start()
    try:
        yield p
    finally:
        p.stop()
