"""The SQL of the sink's write path: the session staging table, COPY into it, and the statements that move
a batch into `decoded_data` and `latest_values` (run by streaming/sink/writer.py)."""

from __future__ import annotations

STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS f2_sink_staging ("
    '"timestamp" timestamptz NOT NULL, device_id integer NOT NULL, datapoint_id integer NOT NULL, '
    "value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
COPY_SQL = 'COPY f2_sink_staging ("timestamp", device_id, datapoint_id, value) FROM STDIN'
# The same rows in COPY's binary format (what native_copy_binary writes): the database reads the timestamp,
# the ids and the value as they are stored instead of parsing their text, about 1 us less per row.
COPY_BINARY_SQL = COPY_SQL + " (FORMAT binary)"
# The common case: every reading of the batch is new. A plain insert costs the database about 40 % less
# than the upsert below (no speculative insertion); in key order the primary key's btree is written in
# sequence. A batch holding a key that is already stored (a redelivery, a re-decoded reading) or a key twice
# fails with a unique violation and is written with UPSERT_SQL instead.
INSERT_SQL = """
INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value)
SELECT "timestamp", device_id, datapoint_id, value
FROM f2_sink_staging
ORDER BY "timestamp", device_id, datapoint_id
"""
# DISTINCT ON keeps one row per key in a batch (the latest record wins), as ON CONFLICT requires.
UPSERT_SQL = """
INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value)
SELECT DISTINCT ON ("timestamp", device_id, datapoint_id) "timestamp", device_id, datapoint_id, value
FROM f2_sink_staging
ORDER BY "timestamp", device_id, datapoint_id
ON CONFLICT ("timestamp", device_id, datapoint_id) DO UPDATE SET value = EXCLUDED.value
WHERE decoded_data.value IS DISTINCT FROM EXCLUDED.value
"""
# The sink's latest_values statement. A batch's series are almost all known already, and MERGE updates them
# through a join: one index probe per series. INSERT .. ON CONFLICT probes the key for a conflict, locks the
# row and logs the lock, then updates it; for the sink's batches it cost the database about 12 % more
# (5.8 against 5.1 us per row, alternating batches of a 720,000-series portfolio). PostgreSQL 15's MERGE
# raises a unique violation where another transaction inserted a new series first; the sink then runs
# LATEST_SQL, which settles that race. The join must be a nested loop over the batch in key order
# (LATEST_MERGE_PLAN): rows are then locked in the order LATEST_SQL locks them, so concurrent writers cannot
# deadlock, and the plan stays one index probe per series however small latest_values was when the statement
# was planned. A hash join planned while latest_values was small scans the whole table for every batch once
# it has grown, until the next ANALYZE; in the bench's reference it halved the rows per second.
LATEST_MERGE_SQL = """
MERGE INTO latest_values
USING (
    SELECT DISTINCT ON (device_id, datapoint_id) device_id, datapoint_id, "timestamp", value
    FROM f2_sink_staging
    ORDER BY device_id, datapoint_id, "timestamp" DESC
) AS batch
ON latest_values.device_id = batch.device_id AND latest_values.datapoint_id = batch.datapoint_id
WHEN MATCHED AND latest_values."timestamp" <= batch."timestamp" THEN
    UPDATE SET "timestamp" = batch."timestamp", value = batch.value
WHEN NOT MATCHED THEN
    INSERT (device_id, datapoint_id, "timestamp", value)
    VALUES (batch.device_id, batch.datapoint_id, batch."timestamp", batch.value)
"""
LATEST_MERGE_PLAN = ("SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off")
LATEST_SQL = """
INSERT INTO latest_values (device_id, datapoint_id, "timestamp", value)
SELECT DISTINCT ON (device_id, datapoint_id) device_id, datapoint_id, "timestamp", value
FROM f2_sink_staging
ORDER BY device_id, datapoint_id, "timestamp" DESC
ON CONFLICT (device_id, datapoint_id) DO UPDATE SET "timestamp" = EXCLUDED."timestamp", value = EXCLUDED.value
WHERE latest_values."timestamp" <= EXCLUDED."timestamp"
"""
# The batch's record for `f2 trace` (timeseries migration 0009), in the batch's own transaction: one row per
# transaction, never per reading. clock_timestamp(): the moment the batch's statements finished, just before
# its COMMIT.
BATCH_RECORD_SQL = """
INSERT INTO sink_batches (committed_at, batch_id, topics, partitions, first_offsets, last_offsets, readings, events)
VALUES (clock_timestamp(), %s, %s, %s, %s, %s, %s, %s)
"""
