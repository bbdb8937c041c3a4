-- readings_hourly and readings_daily on the Apache edition: hypertables the Dagster code location
-- recomputes per partition. On the full edition (timescaledb.license = 'timescale') the same names are
-- continuous aggregates with the same columns, created by the code location (DDL that cannot run here).
DO $$
BEGIN
    IF current_setting('timescaledb.license', true) = 'timescale' THEN
        RAISE NOTICE 'TimescaleDB full edition: readings_hourly/readings_daily become continuous aggregates';
        RETURN;
    END IF;

    CREATE TABLE IF NOT EXISTS readings_hourly (
        bucket timestamptz NOT NULL,
        device_id integer NOT NULL,
        datapoint_id integer NOT NULL,
        avg_value double precision NOT NULL,
        min_value double precision NOT NULL,
        max_value double precision NOT NULL,
        sample_count bigint NOT NULL,
        first_value double precision NOT NULL,
        last_value double precision NOT NULL,
        stddev_value double precision,  -- NULL for a single sample (stddev_samp)
        PRIMARY KEY (bucket, device_id, datapoint_id)
    );
    -- 30-day chunks: about 720 rows per series each, and retention drops whole months.
    PERFORM create_hypertable('readings_hourly', by_range('bucket', INTERVAL '30 days'), if_not_exists => TRUE,
        create_default_indexes => FALSE);
    CREATE INDEX IF NOT EXISTS readings_hourly_series_idx ON readings_hourly (device_id, datapoint_id, bucket DESC);

    CREATE TABLE IF NOT EXISTS readings_daily (
        bucket timestamptz NOT NULL,
        device_id integer NOT NULL,
        datapoint_id integer NOT NULL,
        avg_value double precision NOT NULL,
        min_value double precision NOT NULL,
        max_value double precision NOT NULL,
        sample_count bigint NOT NULL,
        first_value double precision NOT NULL,
        last_value double precision NOT NULL,
        stddev_value double precision,
        PRIMARY KEY (bucket, device_id, datapoint_id)
    );
    PERFORM create_hypertable('readings_daily', by_range('bucket', INTERVAL '365 days'), if_not_exists => TRUE,
        create_default_indexes => FALSE);
    CREATE INDEX IF NOT EXISTS readings_daily_series_idx ON readings_daily (device_id, datapoint_id, bucket DESC);
END;
$$;
