"""The sink's database transaction: one batch of validated rows into `decoded_data` and `latest_values`.

Shared by `f2 sink` and `f2 bench`'s reference figures, so that the reference measures the same SQL.
"""

from __future__ import annotations

import psycopg

from streaming.sink.sql import (
    COPY_BINARY_SQL,
    COPY_SQL,
    INSERT_SQL,
    LATEST_MERGE_PLAN,
    LATEST_MERGE_SQL,
    LATEST_SQL,
    UPSERT_SQL,
)


def write_batch(db: psycopg.Connection, copy_data: bytes, binary: bool = False) -> bool:
    """Store the rows in `copy_data` (COPY text, or COPY binary data when `binary`) in one transaction; True
    when some keys existed already.

    The batch is inserted plainly; when a key already exists the insert is rolled back to its savepoint and
    the batch is upserted instead (a stored reading with a new value is replaced, as the contract says).
    latest_values is merged; when another writer inserted one of the batch's new series first, the merge is
    rolled back to its savepoint and the batch's latest values are upserted instead.
    """
    upserted = False
    with db.transaction():
        with db.cursor() as cur, cur.copy(COPY_BINARY_SQL if binary else COPY_SQL) as copy:
            copy.write(copy_data)
        try:
            with db.transaction():
                db.execute(INSERT_SQL)
        except psycopg.errors.UniqueViolation:
            upserted = True
            db.execute(UPSERT_SQL)
        try:
            with db.transaction():
                for setting in LATEST_MERGE_PLAN:
                    db.execute(setting)
                db.execute(LATEST_MERGE_SQL)
        except psycopg.errors.UniqueViolation:
            db.execute(LATEST_SQL)
    return upserted
