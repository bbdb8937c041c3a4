"""The sink's write transaction against the real database: new readings, redeliveries and re-decodings.

Device ids 7_000_001.. are this module's own: no other test writes them, and they are removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from f2_platform.settings import ConnectionSettings
from streaming.sink_batch import STAGING_DDL, copy_text
from streaming.sink_store import write_batch

DEVICE = 7_000_001
T0, T1 = "2026-03-01T10:00:00Z", "2026-03-01T10:00:30Z"


@pytest.fixture()
def sink_db(migrated: ConnectionSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated.timeseries_dsn) as db:
        db.execute(STAGING_DDL)
        db.commit()
        yield db
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as clean:
        for table in ("decoded_data", "latest_values"):
            clean.execute(f"DELETE FROM {table} WHERE device_id BETWEEN %s AND %s", (DEVICE, DEVICE + 9))  # noqa: S608


def stored(db: psycopg.Connection, table: str) -> list[tuple[str, int, int, float]]:
    rows = db.execute(
        f'SELECT to_char("timestamp" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), device_id, '  # noqa: S608
        f"datapoint_id, value FROM {table} WHERE device_id BETWEEN %s AND %s ORDER BY 1, 2, 3",
        (DEVICE, DEVICE + 9),
    ).fetchall()
    db.commit()
    return rows


def test_new_readings_are_inserted_and_latest_values_follow(sink_db: psycopg.Connection) -> None:
    rows = [(T0, DEVICE, 1, 20.5), (T0, DEVICE, 2, -3.25), (T1, DEVICE, 1, 21.0)]
    assert write_batch(sink_db, copy_text(rows)) is False  # nothing existed: the plain insert did it
    assert stored(sink_db, "decoded_data") == sorted(rows)
    latest = sink_db.execute(
        "SELECT device_id, datapoint_id, value FROM latest_values WHERE device_id = %s ORDER BY 2", (DEVICE,)
    ).fetchall()
    assert latest == [(DEVICE, 1, 21.0), (DEVICE, 2, -3.25)]


def test_a_redelivered_batch_changes_nothing_and_a_re_decoded_reading_replaces_the_value(
    sink_db: psycopg.Connection,
) -> None:
    rows = [(T0, DEVICE + 1, 1, 1.5), (T0, DEVICE + 1, 2, 2.5)]
    write_batch(sink_db, copy_text(rows))
    # The same records again (a sink restarted before committing its offsets): one row per key, same values.
    assert write_batch(sink_db, copy_text(rows)) is True
    assert stored(sink_db, "decoded_data") == rows
    # The reading decoded again with new decimals, next to a reading that is new.
    again = [(T0, DEVICE + 1, 1, 0.15), (T1, DEVICE + 1, 2, 2.75)]
    assert write_batch(sink_db, copy_text(again)) is True
    assert stored(sink_db, "decoded_data") == [
        (T0, DEVICE + 1, 1, 0.15),
        (T0, DEVICE + 1, 2, 2.5),
        (T1, DEVICE + 1, 2, 2.75),
    ]


def test_a_key_twice_in_one_batch_keeps_its_last_record(sink_db: psycopg.Connection) -> None:
    rows = [(T0, DEVICE + 2, 1, 1.0), (T0, DEVICE + 2, 1, 9.0)]
    write_batch(sink_db, copy_text(rows))
    assert stored(sink_db, "decoded_data") == [(T0, DEVICE + 2, 1, 9.0)]


def test_latest_values_never_moves_back_in_time(sink_db: psycopg.Connection) -> None:
    write_batch(sink_db, copy_text([(T1, DEVICE + 3, 1, 5.0)]))
    write_batch(sink_db, copy_text([(T0, DEVICE + 3, 1, 4.0)]))  # a late reading of an older time
    assert stored(sink_db, "latest_values") == [(T1, DEVICE + 3, 1, 5.0)]
    assert len(stored(sink_db, "decoded_data")) == 2
