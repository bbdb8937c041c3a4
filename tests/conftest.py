"""Session fixtures: the same real services as `f2 stack`, started hermetically (temporary state folder,
free ports) through the same code, and torn down afterwards. Tests never touch a running `f2 stack up`.

With F2_TEST_TIMESERIES_DSN set (a superuser of another TimescaleDB server, e.g. the full edition), each stack's
database settings point at a database and login roles of its own there instead (tests/timeseries_server.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

from f2_platform.stack.hermetic import hermetic_stack_settings, make_state_dir, stack_environment
from f2_platform.stack.manager import Stack
from streaming.settings import ConnectionSettings
from tests.timeseries_server import ExternalDatabaseSettings, ExternalDatabaseStack, session_database

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def hermetic_stack(prefix: str, kafka_brokers: int | None = None, kafka_tls: bool | None = None) -> Iterator[Stack]:
    """A stack of its own, up for the block, then down and deleted. Kafka's shape unset: F2_STACK_KAFKA_BROKERS
    and F2_STACK_KAFKA_TLS of the test run's environment, else one node in clear."""
    state_dir = make_state_dir(prefix)
    settings = hermetic_stack_settings(state_dir, kafka_brokers=kafka_brokers, kafka_tls=kafka_tls)
    try:
        with session_database(ExternalDatabaseSettings().timeseries_dsn) as database:
            s = Stack(settings) if database is None else ExternalDatabaseStack(settings, database)
            try:
                s.up()
                yield s
            finally:
                s.down()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def migrate_and_seed(connections: ConnectionSettings) -> ConnectionSettings:
    """Every migration applied, the daemons' grants, and the sample registry loaded."""
    from f2_platform.db.migrations import ENROLLMENT_GRANT_ROLES, GRANTS_ENROLLMENT, apply_grants, migrate
    from f2_platform.registry.seed import seed_sample

    migrate(connections.registry_dsn, "registry")
    migrate(connections.timeseries_dsn, "timeseries")
    assert apply_grants(connections.timeseries_dsn), "the stack did not create the daemons' roles"
    assert apply_grants(connections.registry_dsn, GRANTS_ENROLLMENT, roles=ENROLLMENT_GRANT_ROLES), "no f2_enroll"
    seed_sample(connections.registry_dsn)
    return connections


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with hermetic_stack("f2-test-stack-") as s:
        yield s


# --- Stacks few tests need: up from their first user to their last, not for the rest of the session -------
# A three-node Kafka cluster or a second stack idle for half an hour takes memory and CPU from every other test
# on a two-core machine. Their users are moved next to each other at collection (the cluster's are in three
# modules), and the stack goes down after the last one's teardown; the session's end then finds it closed.
_EARLY_STACKS = ("cluster_stack", "tls_stack", "reload_stack")
_open_stacks: dict[str, ExitStack] = {}
_last_users: dict[str, str] = {}


@contextmanager
def _stack_until_last_user(name: str, stack: AbstractContextManager[Stack]) -> Iterator[Stack]:
    with ExitStack() as closing:
        _open_stacks[name] = closing
        try:
            yield closing.enter_context(stack)
        finally:
            _open_stacks.pop(name, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for name in _EARLY_STACKS:
        users = [item for item in items if name in getattr(item, "fixturenames", ())]
        if not users:
            continue
        # Before the first user in the module holding the last one (the module with most of them keeps its order).
        last_module = users[-1].nodeid.split("::")[0]
        anchor = next(item for item in users if item.nodeid.split("::")[0] == last_module)
        moved = [item for item in users if item.nodeid.split("::")[0] != last_module]
        rest = [item for item in items if item not in moved]
        at = rest.index(anchor)
        items[:] = rest[:at] + moved + rest[at:]
        _last_users[name] = users[-1].nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield  # the item's fixtures (its module's, when the next item is elsewhere) are torn down first
    for name, nodeid in _last_users.items():
        if item.nodeid == nodeid and name in _open_stacks:
            _open_stacks.pop(name).close()


# --- A stack whose Mosquitto is reloaded with SIGHUP (revocations) ------------------------------------------
@pytest.fixture(scope="session")
def reload_stack() -> Iterator[Stack]:
    """For the tests that revoke a certificate and make the broker reread its CRL with SIGHUP. Mosquitto 2.0.11
    can corrupt its session-expiry list in such a reload and crash minutes later (seen twice in full runs of the
    suite; docs/guarantees.md), so the session's broker, which every later MQTT test needs, never gets one."""
    with _stack_until_last_user("reload_stack", hermetic_stack("f2-test-reload-")) as s:
        yield s


# --- Kafka as a three-node KRaft cluster (replication factor 3, min.insync.replicas 2) ---------------------
@pytest.fixture(scope="session")
def cluster_stack() -> Iterator[Stack]:
    with _stack_until_last_user("cluster_stack", hermetic_stack("f2-test-cluster-", kafka_brokers=3)) as s:
        yield s


@pytest.fixture(scope="session")
def cluster_migrated(cluster_stack: Stack) -> ConnectionSettings:
    return migrate_and_seed(cluster_stack.env_settings())


@pytest.fixture(scope="session")
def cluster_env(cluster_stack: Stack) -> dict[str, str]:
    return stack_environment(cluster_stack)


# --- Kafka with SASL_SSL on its client listener (as in Kubernetes) -----------------------------------------
@pytest.fixture(scope="session")
def tls_stack() -> Iterator[Stack]:
    """A stack whose Kafka speaks SASL_SSL (broker certificate from the stack's PKI); its environment names the
    CA in F2_KAFKA_SSL_CA_LOCATION, so daemons started with `tls_env` connect over TLS."""
    with _stack_until_last_user("tls_stack", hermetic_stack("f2-test-tls-", kafka_tls=True)) as s:
        yield s


@pytest.fixture(scope="session")
def tls_migrated(tls_stack: Stack) -> ConnectionSettings:
    return migrate_and_seed(tls_stack.env_settings())


@pytest.fixture(scope="session")
def tls_env(tls_stack: Stack) -> dict[str, str]:
    return stack_environment(tls_stack)


@pytest.fixture(scope="session")
def connections(stack: Stack) -> ConnectionSettings:
    return stack.env_settings()


@pytest.fixture(scope="session")
def stack_env(stack: Stack) -> dict[str, str]:
    return stack_environment(stack)


@pytest.fixture(scope="session")
def migrated(connections: ConnectionSettings) -> ConnectionSettings:
    """The stack with every migration applied and the sample registry loaded."""
    return migrate_and_seed(connections)


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
