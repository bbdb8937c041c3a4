"""`registry`: the PostgreSQL device registry (F2_REGISTRY_DSN), schema "VtDevice" or F2_REGISTRY_SCHEMA."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
import psycopg
from psycopg.rows import dict_row
from pydantic import Field

from f2_platform.environment import connection_settings
from streaming.decoding.topology_store import RegistryStore
from streaming.registry_schema import in_schema, validate_schema_name


class RegistryResource(dg.ConfigurableResource):
    """Read access to the registry, through the same topology loader as the stream processor.

    Python API:
    - `connect()`: context manager yielding a read-only autocommit `psycopg.Connection`.
    - `fetch_all(query, params) -> list[dict[str, Any]]`: a query given as text names the schema "VtDevice",
      and runs in the configured one (`sql(query)` gives that text).
    - `store() -> streaming.decoding.topology_store.RegistryStore`: `store.load(mac)` gives
      `(registry version, ControllerTopology | None)` read in one snapshot; close it when done.
    - `controller_macs() -> list[str]`: MACs of every registered controller.
    """

    dsn: str | None = Field(
        default=None,
        description="The DSN; the code location sets it to EnvVar F2_REGISTRY_DSN (unset locally: the local stack).",
    )
    schema_name: str | None = Field(
        default=None,
        description="The registry's schema; the code location sets it to EnvVar F2_REGISTRY_SCHEMA when set "
        "(default VtDevice).",
    )
    connect_timeout_s: int = 10

    def resolved_dsn(self) -> str:
        return self.dsn or connection_settings().registry_dsn

    def resolved_schema(self) -> str:
        if self.schema_name is not None:
            return validate_schema_name(self.schema_name)
        return connection_settings().registry_schema

    def sql(self, query: str) -> str:
        """`query`, written against "VtDevice", in the registry's schema."""
        return in_schema(query, self.resolved_schema())

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        conn = psycopg.connect(
            self.resolved_dsn(),
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            options="-c default_transaction_read_only=on",
            application_name="f2-dagster",
        )
        try:
            yield conn
        finally:
            conn.close()

    def fetch_all(self, query: Any, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.sql(query) if isinstance(query, str) else query, params)
            return list(cur.fetchall())

    def store(self) -> RegistryStore:
        return RegistryStore(
            self.resolved_dsn(), connect_timeout=float(self.connect_timeout_s), schema=self.resolved_schema()
        )

    def controller_macs(self) -> list[str]:
        rows = self.fetch_all(
            'SELECT macaddress FROM "VtDevice".devices WHERE macaddress IS NOT NULL ORDER BY macaddress'
        )
        return [str(row["macaddress"]) for row in rows]
