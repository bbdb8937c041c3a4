-- The hourly cross-hop reconciliation (issue 19, f2_platform/defs/reconciliation): one row per receive hour
-- and controller, what each hop held for the raw records the bridges received in that hour and whether they
-- are all accounted for (raw = stored + dead-lettered + ignored, and raw = what the bridges counted).
-- Written by Dagster (a run replaces the hour's rows); read by Grafana and the daily report.
CREATE TABLE IF NOT EXISTS reconciliation_results (
    hour timestamptz NOT NULL,                 -- start of the bridges' receive hour (UTC)
    controller_mac text NOT NULL,              -- the raw record key; '' for records without one
    passed boolean NOT NULL,
    bridge_counted integer NOT NULL,           -- MQTT messages the bridges counted (f2.bridge.counts)
    raw_records integer NOT NULL,              -- records in f2.raw received in the hour
    stored integer NOT NULL,                   -- raw records whose readings and events are all stored
    dead_lettered integer NOT NULL,            -- raw records dead-lettered (by the processor or the sink)
    ignored integer NOT NULL,                  -- raw records that decode to nothing, by rule
    readings_expected integer NOT NULL,        -- readings the pure decoder gives for the stored records
    readings_in_f2_decoded integer NOT NULL,
    readings_stored integer NOT NULL,          -- of those, rows in decoded_data
    events_expected integer NOT NULL,
    events_in_f2_events integer NOT NULL,
    events_stored integer NOT NULL,            -- of those, rows in device_events
    dead_letters_by_reason jsonb NOT NULL DEFAULT '{}'::jsonb,
    rescuable integer NOT NULL DEFAULT 0,      -- dead-lettered records the registry now decodes (a replay rescues them)
    differences integer NOT NULL,              -- raw records (or counts) not accounted for
    difference_list jsonb NOT NULL DEFAULT '[]'::jsonb,  -- each: controller, mqtt_topic, partition, offset, kind, detail
    registry_version bigint,                   -- the registry version the raw records were re-decoded with
    checked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hour, controller_mac)
);

CREATE INDEX IF NOT EXISTS reconciliation_results_failed_idx ON reconciliation_results (hour) WHERE NOT passed;
