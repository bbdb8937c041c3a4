"""Writes re-decoded readings the way the sink does: the same staging table, and the upserts it falls back to."""

from __future__ import annotations

import psycopg

from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.topology import Reading
from streaming.sink.sql import COPY_SQL, LATEST_SQL, STAGING_DDL, UPSERT_SQL


def upsert_readings(conn: psycopg.Connection, readings: list[Reading]) -> int:
    """Upserts `readings` in one transaction; returns how many rows were inserted or changed value."""
    if not readings:
        return 0
    with conn.transaction():
        conn.execute(STAGING_DDL)
        with conn.cursor() as cur:
            with cur.copy(COPY_SQL) as copy:
                for r in readings:
                    copy.write_row((rfc3339_from_us(r.timestamp_us), r.device_id, r.datapoint_id, r.value))
            changed = cur.execute(UPSERT_SQL).rowcount
            # A corrected reading that is also a series' newest value corrects latest_values too.
            cur.execute(LATEST_SQL)
    return changed
