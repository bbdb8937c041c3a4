"""`timescale`: the TimescaleDB holding decoded_data and the aggregates (F2_TIMESERIES_DSN)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg
import psycopg
from psycopg.rows import dict_row
from pydantic import Field

from f2_platform.environment import connection_settings
from f2_platform.timeseries.edition import Edition, detect_edition

if TYPE_CHECKING:
    import pandas as pd

Params = Sequence[Any] | Mapping[str, Any] | None


class TimescaleResource(dg.ConfigurableResource):
    """Queries against the time-series database; every call opens its own short-lived connection.

    No pool, on purpose: the busiest run (a daily aggregate and its six checks) opens about twenty connections
    and a sensor tick one to three, at about 5 ms each, and Dagster runs steps and ticks in processes and
    resource instances of their own, so a pool would rarely be reused and would hold idle server backends.

    Python API:
    - `connect(autocommit=True)`: context manager yielding a `psycopg.Connection` (closed on exit). With
      `autocommit=False` the block runs in one transaction, committed on success, rolled back on error.
    - `fetch_all(query, params) -> list[dict[str, Any]]`: rows as dicts keyed by column name.
    - `fetch_one(query, params) -> dict[str, Any] | None`.
    - `fetch_df(query, params) -> pandas.DataFrame`: for pandera checks and analysis.
    - `execute(query, params) -> int`: statements without rows; returns the affected row count.
    - `edition() -> Edition`: `Edition.APACHE` or `Edition.TIMESCALE` (see f2_platform.timeseries.edition).
    `query` is a str or a `psycopg.sql.Composable`; `params` use psycopg placeholders (`%s`, `%(name)s`).
    Tables: decoded_data, latest_values, readings_hourly, readings_daily (same columns on both editions).
    """

    dsn: str | None = Field(
        default=None,
        description="The DSN; the code location sets it to EnvVar F2_TIMESERIES_DSN (unset locally: the local stack).",
    )
    connect_timeout_s: int = 10
    application_name: str = "f2-dagster"

    def resolved_dsn(self) -> str:
        return self.dsn or connection_settings().timeseries_dsn

    @contextmanager
    def connect(self, autocommit: bool = True) -> Iterator[psycopg.Connection]:
        conn = psycopg.connect(
            self.resolved_dsn(),
            autocommit=autocommit,
            connect_timeout=self.connect_timeout_s,
            application_name=self.application_name,
        )
        try:
            if autocommit:
                yield conn
            else:
                with conn.transaction():
                    yield conn
        finally:
            conn.close()

    def fetch_all(self, query: Any, params: Params = None) -> list[dict[str, Any]]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    def fetch_one(self, query: Any, params: Params = None) -> dict[str, Any] | None:
        rows = self.fetch_all(query, params)
        return rows[0] if rows else None

    def fetch_df(self, query: Any, params: Params = None) -> pd.DataFrame:
        import pandas as pd

        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            columns = [d.name for d in cur.description or ()]
            return pd.DataFrame(cur.fetchall(), columns=columns)

    def execute(self, query: Any, params: Params = None) -> int:
        with self.connect() as conn:
            return conn.execute(query, params).rowcount

    def edition(self) -> Edition:
        with self.connect() as conn:
            return detect_edition(conn)
