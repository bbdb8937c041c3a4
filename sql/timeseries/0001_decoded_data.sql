CREATE EXTENSION IF NOT EXISTS timescaledb;

-- One row per reading. The key makes a reading written twice one row; a re-decoded reading replaces it.
CREATE TABLE IF NOT EXISTS decoded_data (
    "timestamp" timestamptz NOT NULL,
    device_id integer NOT NULL,
    datapoint_id integer NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY ("timestamp", device_id, datapoint_id)
);

SELECT create_hypertable('decoded_data', by_range('timestamp', INTERVAL '1 day'), if_not_exists => TRUE);

CREATE INDEX IF NOT EXISTS decoded_data_device_datapoint_time_idx
    ON decoded_data (device_id, datapoint_id, "timestamp" DESC);

-- Last known value per datapoint, maintained by the sink in the same transaction as its upsert.
CREATE TABLE IF NOT EXISTS latest_values (
    device_id integer NOT NULL,
    datapoint_id integer NOT NULL,
    "timestamp" timestamptz NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (device_id, datapoint_id)
);
