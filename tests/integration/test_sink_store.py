"""The sink's write transaction against the real database: new readings, redeliveries and re-decodings.

Ten device ids drawn at random per run are this module's own (each test uses one of them), at times of
yesterday: no other test writes them, so nothing earlier tests left matters. Their latest_values rows are
removed afterwards; their readings stay in decoded_data, with the session's database: a DELETE there fails on a
full-edition server once a chunk is compressed.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from streaming.decoding.decoded_format import encode_readings
from streaming.decoding.topology import Reading
from streaming.settings import ConnectionSettings
from streaming.sink.rows import copy_text, native_copy_binary, parse_record
from streaming.sink.sql import COPY_BINARY_SQL, COPY_SQL, LATEST_MERGE_PLAN, LATEST_MERGE_SQL, STAGING_DDL
from streaming.sink.writer import write_batch

DEVICE = 1_000_000_001 + 10 * random.randrange(100_000_000)
# Inside the compression policy's 7 days: the chunk stays uncompressed on a full-edition server.
_YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
T0, T1 = f"{_YESTERDAY}T10:00:00Z", f"{_YESTERDAY}T10:00:30Z"


@pytest.fixture()
def sink_db(migrated: ConnectionSettings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(migrated.timeseries_dsn) as db:
        db.execute(STAGING_DDL)
        db.commit()
        yield db
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as clean:
        # A plain table: deleting is fine on either edition.
        clean.execute("DELETE FROM latest_values WHERE device_id BETWEEN %s AND %s", (DEVICE, DEVICE + 9))


def stored(db: psycopg.Connection, table: str, device: int) -> list[tuple[str, int, int, float]]:
    """The rows of `device`, which one test alone writes."""
    rows = db.execute(
        f'SELECT to_char("timestamp" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS"Z"\'), device_id, '  # noqa: S608
        f"datapoint_id, value FROM {table} WHERE device_id = %s ORDER BY 1, 2, 3",
        (device,),
    ).fetchall()
    db.commit()
    return rows


def test_new_readings_are_inserted_and_latest_values_follow(sink_db: psycopg.Connection) -> None:
    rows = [(T0, DEVICE, 1, 20.5), (T0, DEVICE, 2, -3.25), (T1, DEVICE, 1, 21.0)]
    assert write_batch(sink_db, copy_text(rows)) is False  # nothing existed: the plain insert did it
    assert stored(sink_db, "decoded_data", DEVICE) == sorted(rows)
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
    assert stored(sink_db, "decoded_data", DEVICE + 1) == rows
    # The reading decoded again with new decimals, next to a reading that is new.
    again = [(T0, DEVICE + 1, 1, 0.15), (T1, DEVICE + 1, 2, 2.75)]
    assert write_batch(sink_db, copy_text(again)) is True
    assert stored(sink_db, "decoded_data", DEVICE + 1) == [
        (T0, DEVICE + 1, 1, 0.15),
        (T0, DEVICE + 1, 2, 2.5),
        (T1, DEVICE + 1, 2, 2.75),
    ]


def test_a_key_twice_in_one_batch_keeps_its_last_record(sink_db: psycopg.Connection) -> None:
    rows = [(T0, DEVICE + 2, 1, 1.0), (T0, DEVICE + 2, 1, 9.0)]
    write_batch(sink_db, copy_text(rows))
    assert stored(sink_db, "decoded_data", DEVICE + 2) == [(T0, DEVICE + 2, 1, 9.0)]


def test_latest_values_never_moves_back_in_time(sink_db: psycopg.Connection) -> None:
    write_batch(sink_db, copy_text([(T1, DEVICE + 3, 1, 5.0)]))
    write_batch(sink_db, copy_text([(T0, DEVICE + 3, 1, 4.0)]))  # a late reading of an older time
    assert stored(sink_db, "latest_values", DEVICE + 3) == [(T1, DEVICE + 3, 1, 5.0)]
    assert len(stored(sink_db, "decoded_data", DEVICE + 3)) == 2


def test_a_new_series_another_writer_inserts_first_is_settled_by_the_upsert(
    sink_db: psycopg.Connection, migrated: ConnectionSettings
) -> None:
    # Another writer (a sink that still held the partition, a reprocessing run) has inserted the series'
    # latest value and not yet committed. The sink's merge finds no row, inserts, waits on that writer's key,
    # and fails with a unique violation when it commits: the batch must still be stored, with its newer value.
    with psycopg.connect(migrated.timeseries_dsn) as other:
        other.execute(
            'INSERT INTO latest_values (device_id, datapoint_id, "timestamp", value) VALUES (%s, 1, %s, 4.0)',
            (DEVICE + 4, T0),
        )
        sink_pid = sink_db.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        sink_db.commit()
        outcome: list[object] = []

        def sink_writes() -> None:
            try:
                outcome.append(write_batch(sink_db, copy_text([(T1, DEVICE + 4, 1, 5.0)])))
            except Exception as exc:  # reported by the assertion below
                outcome.append(exc)

        writer = threading.Thread(target=sink_writes)
        writer.start()
        with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as watch:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                waiting = watch.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (sink_pid,)
                ).fetchone()
                if waiting == ("Lock",):
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the sink's write never waited on the other writer's new series")
        other.commit()
        writer.join(30)
    assert outcome == [False]
    assert stored(sink_db, "latest_values", DEVICE + 4) == [(T1, DEVICE + 4, 1, 5.0)]
    assert stored(sink_db, "decoded_data", DEVICE + 4) == [(T1, DEVICE + 4, 1, 5.0)]


def staged(db: psycopg.Connection, sql: str, data: bytes) -> list[tuple[object, ...]]:
    """The rows the database reads from COPY data into the staging table (rolled back)."""
    with db.transaction(force_rollback=True):
        with db.cursor() as cur, cur.copy(sql) as copy:
            copy.write(data)
        return db.execute(
            'SELECT "timestamp", device_id, datapoint_id, value, value::text FROM f2_sink_staging ORDER BY 1, 2, 3'
        ).fetchall()


def test_the_database_reads_the_same_rows_from_native_binary_copy_data_as_from_the_pure_paths_text(
    sink_db: psycopg.Connection,
) -> None:
    rng = random.Random(11)
    readings = [
        Reading(
            rng.randint(0, 253402300799999999),  # 1970 .. 9999
            rng.randint(1, 2**31 - 1),
            rng.randint(1, 2**31 - 1),
            rng.choice([0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, -23.52, rng.uniform(-1e6, 1e6)]),
        )
        for _ in range(2000)
    ]
    values: list[bytes | None] = [value for _, value in encode_readings(readings)]
    binary = native_copy_binary(values)
    assert binary is not None
    from_text = staged(sink_db, COPY_SQL, copy_text(parse_record(value) for value in values))
    assert len(from_text) == 2000
    assert staged(sink_db, COPY_BINARY_SQL, binary) == from_text


def test_native_binary_copy_data_is_stored(sink_db: psycopg.Connection) -> None:
    record = b'{"timestamp": "%s", "device_id": %d, "datapoint_id": %d, "value": %s}'
    values: list[bytes | None] = [
        record % (T0.replace("Z", ".000000Z").encode(), DEVICE + 5, 1, b"20.5"),
        record % (T1.replace("Z", ".000000Z").encode(), DEVICE + 5, 1, b"-0.0"),
    ]
    binary = native_copy_binary(values)
    assert binary is not None
    assert write_batch(sink_db, binary, binary=True) is False
    assert stored(sink_db, "decoded_data", DEVICE + 5) == [(T0, DEVICE + 5, 1, 20.5), (T1, DEVICE + 5, 1, -0.0)]
    assert write_batch(sink_db, binary, binary=True) is True  # redelivered: the upsert path reads it too
    assert stored(sink_db, "latest_values", DEVICE + 5) == [(T1, DEVICE + 5, 1, -0.0)]
    # -0.0 == 0.0 in Python: the database's text of the values shows the sign was kept.
    texts = sink_db.execute(
        'SELECT value::text FROM decoded_data WHERE device_id = %s ORDER BY "timestamp"', (DEVICE + 5,)
    ).fetchall()
    sink_db.commit()
    assert texts == [("20.5",), ("-0",)]


def test_the_latest_values_merge_probes_the_key_once_per_series_in_key_order(sink_db: psycopg.Connection) -> None:
    # A batch the planner knows to be large (analyzed) against the small latest_values of this test database:
    # left to itself it hash-joins (or, with only a handful of rows there, merge-joins after sorting them:
    # which one depends on what earlier tests left), scanning latest_values and locking its rows in the
    # table's order. Under LATEST_MERGE_PLAN, as write_batch runs it, the merge walks the batch in key order,
    # one probe per series.
    rows = [(T0, DEVICE + 6 + i % 3, i, float(i)) for i in range(1, 6001)]
    with sink_db.transaction(force_rollback=True):
        # latest_values as a running deployment has it (a row per series, far more than a batch touches), not
        # the handful of rows earlier tests of this database may have left: with a few rows a sequential scan
        # is the planner's best inner side whatever the settings. The rows are this test's own device (rolled
        # back); the planner sizes the table from its pages.
        sink_db.execute(
            "INSERT INTO latest_values SELECT %s, dp, %s, 0 FROM generate_series(1, 20000) AS dp", (DEVICE + 9, T0)
        )
        with sink_db.cursor() as cur, cur.copy(COPY_SQL) as copy:
            copy.write(copy_text(rows))
        sink_db.execute("ANALYZE f2_sink_staging")
        free = "\n".join(r[0] for r in sink_db.execute("EXPLAIN " + LATEST_MERGE_SQL).fetchall())
        for setting in LATEST_MERGE_PLAN:
            sink_db.execute(setting)
        planned = "\n".join(r[0] for r in sink_db.execute("EXPLAIN " + LATEST_MERGE_SQL).fetchall())
    assert re.search(r"(Hash|Merge) (Left |Right )?Join", free), free  # what the settings are for
    assert "Hash" not in planned and "Merge Join" not in planned, planned
    assert "Nested Loop" in planned and "Index Scan using latest_values_pkey" in planned, planned
    assert "Sort Key: f2_sink_staging.device_id, f2_sink_staging.datapoint_id" in planned, planned
