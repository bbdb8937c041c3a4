"""Which TimescaleDB edition a database runs: it decides between native and Dagster-maintained aggregates."""

from __future__ import annotations

from enum import StrEnum

import psycopg


class Edition(StrEnum):
    # `SHOW timescaledb.license` answers 'apache' for the Apache-2 build (hypertables, time_bucket,
    # drop_chunks) and 'timescale' for the community build (plus compression and continuous aggregates).
    APACHE = "apache"
    TIMESCALE = "timescale"

    @property
    def has_native_aggregates(self) -> bool:
        return self is Edition.TIMESCALE

    @property
    def has_compression(self) -> bool:
        return self is Edition.TIMESCALE


APACHE_LIMITATION = (
    "TimescaleDB runs the Apache edition (timescaledb.license = 'apache'), which has no compression and no "
    "continuous aggregates; set timescaledb.license = 'timescale' on a server with the community build "
    "to get them"
)


def edition_from_license(license_name: str | None) -> Edition:
    """Anything but the community license (absent setting, 'apache') is treated as the Apache edition."""
    return Edition.TIMESCALE if (license_name or "").strip().lower() == "timescale" else Edition.APACHE


def detect_edition(conn: psycopg.Connection) -> Edition:
    row = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    return edition_from_license(row[0] if row else None)
