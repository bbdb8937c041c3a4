-- Hourly and daily aggregates of device_events (0006), recomputed per partition by the Dagster code location
-- (f2_platform/defs/events, f2_platform/timeseries/event_aggregate_sql.py); docs/contracts.md, "Event aggregates".
--
-- Both editions: plain hypertables (no continuous aggregate: distinct credentials and door-open runs that cross
-- window bounds cannot be one). A run writes its window with INSERT .. ON CONFLICT DO UPDATE and sets rows its
-- recomputation no longer finds to zero; it never DELETEs, so the same code stays correct should an operator
-- compress these hypertables on the full edition (TimescaleDB 2.11+ updates compressed chunks in place).

-- Events per bucket, component, kind and state. state is '' for the kinds without one (access, indicator):
-- a primary-key column cannot be NULL.
CREATE TABLE IF NOT EXISTS event_counts_hourly (
    bucket timestamptz NOT NULL,
    controller_mac text NOT NULL,
    connector smallint NOT NULL,
    component text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    controller_id integer,
    device_id integer,
    events integer NOT NULL CHECK (events >= 0),
    PRIMARY KEY (bucket, controller_mac, connector, component, kind, state)
);
SELECT create_hypertable('event_counts_hourly', by_range('bucket', INTERVAL '30 days'), if_not_exists => TRUE,
    create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS event_counts_daily (LIKE event_counts_hourly INCLUDING ALL);
SELECT create_hypertable('event_counts_daily', by_range('bucket', INTERVAL '365 days'), if_not_exists => TRUE,
    create_default_indexes => FALSE);

-- Per bucket and component: what an operator asks of it. Door metrics are 0 for other components, presence
-- metrics 0 for everything but the controller row (component 'controller', connector 0). Durations are the
-- time inside the bucket (a door open across midnight adds to both days); a door open, or a controller
-- offline, for the whole bucket has a row even without an event in it.
CREATE TABLE IF NOT EXISTS event_activity_hourly (
    bucket timestamptz NOT NULL,
    controller_mac text NOT NULL,
    connector smallint NOT NULL,
    component text NOT NULL,
    controller_id integer,
    device_id integer,
    events integer NOT NULL CHECK (events >= 0),                     -- every event of the component
    access_attempts integer NOT NULL CHECK (access_attempts >= 0),   -- access events (scans)
    distinct_credentials integer NOT NULL CHECK (distinct_credentials >= 0),  -- distinct fingerprints scanned
    open_count integer NOT NULL CHECK (open_count >= 0),             -- door: changes to open
    open_s double precision NOT NULL CHECK (open_s >= 0),            -- door: time open inside the bucket
    longest_open_s double precision NOT NULL CHECK (longest_open_s >= 0),  -- door: longest open run inside it
    outages integer NOT NULL CHECK (outages >= 0),                   -- controller: changes to offline
    outage_s double precision NOT NULL CHECK (outage_s >= 0),        -- controller: time offline inside the bucket
    PRIMARY KEY (bucket, controller_mac, connector, component)
);
SELECT create_hypertable('event_activity_hourly', by_range('bucket', INTERVAL '30 days'), if_not_exists => TRUE,
    create_default_indexes => FALSE);

CREATE TABLE IF NOT EXISTS event_activity_daily (LIKE event_activity_hourly INCLUDING ALL);
SELECT create_hypertable('event_activity_daily', by_range('bucket', INTERVAL '365 days'), if_not_exists => TRUE,
    create_default_indexes => FALSE);

-- Alerts already posted for a run of a component's state (the door_held_open check): a re-run of a
-- partition, or the next partition the same run reaches into, finds its run here and posts nothing again.
CREATE TABLE IF NOT EXISTS event_alerts (
    alert text NOT NULL,                  -- which alert: door_held_open
    controller_mac text NOT NULL,
    connector smallint NOT NULL,
    component text NOT NULL,
    run_start timestamptz NOT NULL,       -- first event of the run the alert is about
    alerted_at timestamptz NOT NULL DEFAULT now(),
    details jsonb,
    PRIMARY KEY (alert, controller_mac, connector, component, run_start)
);
