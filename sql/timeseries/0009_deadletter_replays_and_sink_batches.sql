-- Dead-letter replays and the trace of a reading (docs/operations-replay-trace.md).
--
-- deadletter_replays: one row per dead letter a replay (f2 deadletters replay, the Dagster job
-- deadletter_replay_job) looked at, keyed by the record it came from (the dead letter's f2.source.* headers).
-- A row with outcome 'replayed' is never replayed again, so a second run stores nothing twice; a row with
-- outcome 'still-failing' holds the reason the last attempt gave and is tried again by later runs.
CREATE TABLE IF NOT EXISTS deadletter_replays (
    source_topic text NOT NULL,
    source_partition integer NOT NULL,
    source_offset bigint NOT NULL,
    deadletter_partition integer NOT NULL,
    deadletter_offset bigint NOT NULL,
    dead_lettered_at timestamptz NOT NULL,    -- the dead letter's Kafka timestamp
    original_reason text NOT NULL,            -- f2.reason of the dead letter
    controller_mac text,                      -- the record key, when it is a controller's MAC
    mqtt_topic text,
    outcome text NOT NULL CHECK (outcome IN ('replayed', 'still-failing')),
    reason text,                              -- still-failing: the reason the last attempt gave (may be new)
    detail text,
    readings integer NOT NULL DEFAULT 0,      -- replayed: readings and events it stored
    events integer NOT NULL DEFAULT 0,
    device_time timestamptz,                  -- the payload's timestamp, where it has one
    registry_version bigint,                  -- the registry version it was decoded with
    decoder_version text,
    attempts integer NOT NULL DEFAULT 1,
    first_attempt_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz NOT NULL DEFAULT now(),  -- the last attempt
    run_id text,                              -- the Dagster run or "cli"
    PRIMARY KEY (source_topic, source_partition, source_offset)
);
-- f2 trace finds the replay that stored a reading by its controller and device time.
CREATE INDEX IF NOT EXISTS deadletter_replays_controller_time_idx
    ON deadletter_replays (controller_mac, device_time) WHERE outcome = 'replayed';

-- sink_batches: one row per database transaction of the sink (not per reading): when it committed and which
-- f2.decoded / f2.events offsets it held, per partition. f2 trace goes from a stored reading to the decoded
-- record that carried it (found in f2.decoded) and from there to the sink batch that committed it. The sink
-- writes the row in the same transaction as the batch's readings.
CREATE TABLE IF NOT EXISTS sink_batches (
    committed_at timestamptz NOT NULL,
    batch_id bigint NOT NULL,                 -- random per batch (several sinks write concurrently)
    topics text[] NOT NULL,                   -- per partition range: topic, partition, first and last offset
    partitions integer[] NOT NULL,
    first_offsets bigint[] NOT NULL,
    last_offsets bigint[] NOT NULL,
    readings integer NOT NULL,
    events integer NOT NULL
);
-- One-day chunks, dropped after f2.decoded's retention (7 days): older decoded records cannot be read anyway
-- (f2_platform/tracing/retention.py drops them; the trace says when a batch is gone).
SELECT create_hypertable('sink_batches', by_range('committed_at', INTERVAL '1 day'), if_not_exists => TRUE,
    create_default_indexes => FALSE);
CREATE INDEX IF NOT EXISTS sink_batches_committed_at_idx ON sink_batches (committed_at DESC);
