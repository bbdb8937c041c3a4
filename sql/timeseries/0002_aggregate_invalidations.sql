-- Windows of the aggregates that received readings after they could have been aggregated (late data:
-- controllers flushing their buffers, reprocessing). One row per (aggregate, window, writing transaction):
-- a run that recomputes a window deletes the rows its snapshot saw, so a row left here always means
-- "this window changed after its last materialization". The late-data sensor reads this table.
CREATE TABLE IF NOT EXISTS aggregate_invalidations (
    aggregate text NOT NULL,
    bucket timestamptz NOT NULL,
    -- Keyed by transaction: writers never wait on each other, and a big batch logs each window once.
    xact xid8 NOT NULL DEFAULT pg_current_xact_id(),
    logged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate, bucket, xact)
);

CREATE OR REPLACE FUNCTION f2_log_late_reading() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aggregate_invalidations (aggregate, bucket)
    VALUES ('readings_hourly', time_bucket(INTERVAL '1 hour', NEW."timestamp")),
           ('readings_daily', time_bucket(INTERVAL '1 day', NEW."timestamp"))
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END;
$$;

-- BEFORE, not AFTER, row triggers: TimescaleDB refuses AFTER ROW INSERT triggers on inserts into compressed
-- chunks. BEFORE INSERT also fires for rows an upsert turns into updates, which at worst recomputes a
-- window once more. Only readings older than the current hour are logged: the sink's steady stream of
-- current readings costs one comparison per row.
DROP TRIGGER IF EXISTS decoded_data_late_insert ON decoded_data;
CREATE TRIGGER decoded_data_late_insert
    BEFORE INSERT ON decoded_data
    FOR EACH ROW
    WHEN (NEW."timestamp" < time_bucket(INTERVAL '1 hour', clock_timestamp()))
    EXECUTE FUNCTION f2_log_late_reading();

DROP TRIGGER IF EXISTS decoded_data_late_update ON decoded_data;
CREATE TRIGGER decoded_data_late_update
    BEFORE UPDATE ON decoded_data
    FOR EACH ROW
    WHEN (NEW."timestamp" < time_bucket(INTERVAL '1 hour', clock_timestamp())
          AND NEW.value IS DISTINCT FROM OLD.value)
    EXECUTE FUNCTION f2_log_late_reading();
