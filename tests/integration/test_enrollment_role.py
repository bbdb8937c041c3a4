"""The enrollment service's role f2_enroll (sql/grants_enrollment.sql) on the session's real database: with a
login of its own (a member of f2_enroll, as the service's login is in Compose and Kubernetes), enrollment's own
store reads a controller's claiming code, records its enrollment and a re-enrollment; everything else is
refused: the time series, writing to or reading more of the users' registry, removing enrollments."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from certs.enrollment_store import EnrollmentStore
from f2_platform.registry.sample import TEMPLATES
from f2_platform.registry.seed import seed_fleet
from streaming.settings import ConnectionSettings
from tests.timeseries_server import url_dsn

pytestmark = pytest.mark.integration

DENIED = psycopg.errors.InsufficientPrivilege


@pytest.fixture()
def enroll_dsn(migrated: ConnectionSettings) -> Iterator[str]:
    """A login role of this test's own in f2_enroll (its rights and nothing else), dropped afterwards."""
    login, password = f"f2_enroll_test_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as owner:
        owner.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE f2_enroll").format(
                sql.Identifier(login), sql.Literal(password)
            )
        )
    try:
        yield url_dsn(migrated.registry_dsn, user=login, password=password)
    finally:
        with psycopg.connect(migrated.registry_dsn, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


@pytest.fixture()
def controller(migrated: ConnectionSettings) -> Iterator[str]:
    """A controller of this test's own (random MAC, claiming code claim-<mac>), removed with its enrollment."""
    mac = "ea" + uuid.uuid4().hex[:10]
    templates = [t for t in TEMPLATES if t.name == "F2 Controller"]
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as owner:
        with owner.transaction():
            seed_fleet(owner, [(f"Controller {mac}", mac)], [], templates)
        try:
            yield mac
        finally:
            owner.execute('DELETE FROM "VtDevice".f2_enrollments WHERE mac = %s', (mac,))
            owner.execute('DELETE FROM "VtDevice".devices WHERE macaddress = %s', (mac,))


def test_the_enrollment_role_can_enroll_and_re_enroll(
    migrated: ConnectionSettings, enroll_dsn: str, controller: str
) -> None:
    store = EnrollmentStore(enroll_dsn)
    store.check_schema()
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
    with store.enrollment(controller) as tx:
        assert tx.claiming_code() == (True, f"claim-{controller}")
        assert tx.lock_and_state() is None
        tx.record("0a01", not_after, "csr", "198.51.100.7")
    first = store.state(controller)
    assert first is not None and (first.serial, first.enrollments, first.reenroll_allowed) == ("0a01", 1, False)
    with store.enrollment("ffffffffff0e") as tx:  # an unknown MAC reads as no controller
        assert tx.claiming_code() == (False, None)

    # The operator's permit (the owner runs `f2 certs allow-reenroll`), consumed by the next enrollment.
    with psycopg.connect(migrated.registry_dsn, autocommit=True) as owner:
        owner.execute('UPDATE "VtDevice".f2_enrollments SET reenroll_allowed = true WHERE mac = %s', (controller,))
    with store.enrollment(controller) as tx:
        state = tx.lock_and_state()
        assert state is not None and state.reenroll_allowed
        tx.record("0a02", not_after, "generated", "198.51.100.8")
    second = store.state(controller)
    assert second is not None and (second.serial, second.enrollments, second.reenroll_allowed) == ("0a02", 2, False)


@pytest.mark.parametrize(
    "statement",
    [
        # the time series
        'INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value) VALUES (now(), 1, 1, 1.0)',
        "SELECT count(*) FROM decoded_data",
        "SELECT count(*) FROM latest_values",
        "CREATE TABLE public.f2_enroll_was_here (id int)",
        # the users' registry: no writes, no columns but the two it needs, no other table
        "UPDATE \"VtDevice\".devices SET claimingcode = 'stolen' WHERE macaddress = %(mac)s",
        "INSERT INTO \"VtDevice\".devices (devicename) VALUES ('intruder')",
        'DELETE FROM "VtDevice".devices WHERE macaddress = %(mac)s',
        'SELECT devicename, deviceid FROM "VtDevice".devices WHERE macaddress = %(mac)s',
        'SELECT count(*) FROM "VtDevice".pins',
        'SELECT count(*) FROM "VtDevice".datapoints',
        # its own ledger: never removed by the service
        'DELETE FROM "VtDevice".f2_enrollments WHERE mac = %(mac)s',
        'TRUNCATE "VtDevice".f2_enrollments',
    ],
)
def test_the_enrollment_role_is_refused_the_rest(enroll_dsn: str, controller: str, statement: str) -> None:
    with psycopg.connect(enroll_dsn, autocommit=True) as conn, pytest.raises(DENIED):
        conn.execute(statement, {"mac": controller} if "%(mac)s" in statement else None)
