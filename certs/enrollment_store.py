"""The registry side of enrollment: claiming codes ("VtDevice".devices) and the enrollment ledger
("VtDevice".f2_enrollments, sql/registry/0004_enrollments.sql). Every statement is parameterised; the schema is
the registry's (F2_REGISTRY_SCHEMA, EnrollSettings.registry_schema), put where the statements say "VtDevice".

Needed rights: SELECT on devices (macaddress, claimingcode); SELECT, INSERT, UPDATE on f2_enrollments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import psycopg

from certs.enrollment_rules import EnrollmentState
from certs.errors import CertsError
from certs.registry_schema import DEFAULT_SCHEMA, in_schema

LEDGER: Final = '"VtDevice".f2_enrollments'

# Literal statements (no string building): only values travel, always as parameters.
_CODE_SQL: Final = 'SELECT claimingcode FROM "VtDevice".devices WHERE macaddress = %s'
_STATE_SQL: Final = (
    'SELECT mac, serial, enrolled_at, enrollments, reenroll_allowed FROM "VtDevice".f2_enrollments WHERE mac = %s'
)
# Serialises enrollments of one MAC across every instance of the service: the second waits for the
# first to commit, then sees its row (a lock on a row that does not exist yet is not possible).
_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_RECORD_SQL: Final = (
    'INSERT INTO "VtDevice".f2_enrollments AS e (mac, serial, not_after, key_source, client_address) '
    "VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (mac) DO UPDATE SET serial = EXCLUDED.serial, not_after = EXCLUDED.not_after, "
    "key_source = EXCLUDED.key_source, client_address = EXCLUDED.client_address, enrolled_at = now(), "
    "enrollments = e.enrollments + 1, previous_serial = e.serial, reenroll_allowed = false "
    "WHERE e.reenroll_allowed"
)
_ALLOW_SQL: Final = (
    'UPDATE "VtDevice".f2_enrollments SET reenroll_allowed = true, reenroll_allowed_at = now() '
    "WHERE mac = %s RETURNING serial, enrollments"
)


@dataclass(frozen=True)
class Statements:
    """The statements above for a registry in `schema`."""

    ledger: str
    code: str
    state: str
    record: str
    allow: str

    @staticmethod
    def of(schema: str) -> Statements:
        return Statements(*(in_schema(s, schema) for s in (LEDGER, _CODE_SQL, _STATE_SQL, _RECORD_SQL, _ALLOW_SQL)))


class EnrollmentStoreError(CertsError):
    """The registry cannot serve enrollment: unreachable, not migrated, or a statement failed."""


class RegistryUnavailableError(EnrollmentStoreError):
    """No connection to the registry (down, wrong DSN, wrong credentials)."""


class EnrollmentRaceError(EnrollmentStoreError):
    """The ledger row changed under an enrollment although the MAC was locked (should not happen)."""


DsnSource = str | Callable[[], str]


@dataclass(frozen=True)
class ReenrollPermit:
    """What `allow_reenroll` found."""

    is_controller: bool
    enrolled: bool
    serial: str | None = None  # the current certificate of the controller, when enrolled
    enrollments: int = 0


class EnrollmentTransaction:
    """One enrollment's registry work, inside a single transaction holding the MAC's lock."""

    def __init__(self, conn: psycopg.Connection, mac: str, statements: Statements | None = None) -> None:
        self._conn = conn
        self.mac = mac
        self._sql = statements or Statements.of(DEFAULT_SCHEMA)

    def claiming_code(self) -> tuple[bool, str | None]:
        """(a controller with this MAC exists, its claiming code)."""
        row = self._conn.execute(self._sql.code, (self.mac,)).fetchone()
        if row is None:
            return False, None
        return True, None if row[0] is None else str(row[0])

    def lock_and_state(self) -> EnrollmentState | None:
        self._conn.execute(_LOCK_SQL, (f"f2-enroll:{self.mac}",))
        row = self._conn.execute(self._sql.state, (self.mac,)).fetchone()
        if row is None:
            return None
        return EnrollmentState(
            mac=str(row[0]),
            serial=str(row[1]),
            enrolled_at=row[2],
            enrollments=int(row[3]),
            reenroll_allowed=bool(row[4]),
        )

    def record(self, serial: str, not_after: datetime, key_source: str, client_address: str) -> None:
        """Add the ledger row, or consume the re-enrollment permit of the existing one."""
        cursor = self._conn.execute(self._sql.record, (self.mac, serial, not_after, key_source, client_address))
        if cursor.rowcount != 1:
            raise EnrollmentRaceError(
                f"the enrollment ledger row of {self.mac} changed during its enrollment; nothing was recorded"
            )


class EnrollmentStore:
    """Opens a short connection per call, so a registry restart costs one failed request, not the service."""

    def __init__(
        self,
        dsn: DsnSource,
        *,
        connect_timeout: int = 5,
        statement_timeout_ms: int = 10000,
        schema: str = DEFAULT_SCHEMA,
    ) -> None:
        self._dsn = dsn
        self._sql = Statements.of(schema)
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms

    def _connect(self) -> psycopg.Connection:
        dsn = self._dsn() if callable(self._dsn) else self._dsn
        try:
            conn = psycopg.connect(dsn, connect_timeout=self._connect_timeout, application_name="f2-enroll")
        except psycopg.OperationalError as exc:
            raise RegistryUnavailableError(f"cannot connect to the registry: {str(exc).strip()}") from exc
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(self._statement_timeout_ms),))
        conn.commit()
        return conn

    def check_schema(self) -> None:
        """Fail early, with the fix, when the ledger table (migration registry/0004) is missing."""
        with self._connect() as conn:
            row = conn.execute("SELECT to_regclass(%s)", (self._sql.ledger,)).fetchone()
        if row is None or row[0] is None:
            raise EnrollmentStoreError(
                f"the registry has no {self._sql.ledger} table: run `f2 db migrate` (migration registry/0004) first"
            )

    @contextmanager
    def enrollment(self, mac: str) -> Iterator[EnrollmentTransaction]:
        """A transaction for one enrollment: committed when the block ends, rolled back if it raises."""
        with self._connect() as conn, conn.transaction():
            yield EnrollmentTransaction(conn, mac, self._sql)

    def state(self, mac: str) -> EnrollmentState | None:
        with self._connect() as conn:
            row = conn.execute(self._sql.state, (mac,)).fetchone()
        if row is None:
            return None
        return EnrollmentState(str(row[0]), str(row[1]), row[2], int(row[3]), bool(row[4]))

    def allow_reenroll(self, mac: str) -> ReenrollPermit:
        """Let `mac` enroll once more (consumed by its next enrollment)."""
        try:
            with self._connect() as conn, conn.transaction():
                known = conn.execute(self._sql.code, (mac,)).fetchone() is not None
                if not known:
                    return ReenrollPermit(is_controller=False, enrolled=False)
                row = conn.execute(self._sql.allow, (mac,)).fetchone()
        except psycopg.errors.UndefinedTable as exc:
            raise EnrollmentStoreError(
                f"the registry has no {self._sql.ledger} table: run `f2 db migrate` (migration registry/0004) first"
            ) from exc
        except psycopg.Error as exc:
            raise EnrollmentStoreError(f"the registry refused the change: {str(exc).strip()}") from exc
        if row is None:
            return ReenrollPermit(is_controller=True, enrolled=False)
        return ReenrollPermit(is_controller=True, enrolled=True, serial=str(row[0]), enrollments=int(row[1]))


__all__ = [
    "EnrollmentRaceError",
    "EnrollmentStore",
    "EnrollmentStoreError",
    "EnrollmentTransaction",
    "ReenrollPermit",
    "RegistryUnavailableError",
]
