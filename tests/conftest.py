"""Session fixtures: the same real services as `f2 stack`, started hermetically (temporary state folder,
free ports) through the same code, and torn down afterwards. Tests never touch a running `f2 stack up`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from f2_platform.stack.hermetic import hermetic_stack_settings, make_state_dir, stack_environment
from f2_platform.stack.manager import Stack
from streaming.settings import ConnectionSettings

REPO = Path(__file__).resolve().parents[1]


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
