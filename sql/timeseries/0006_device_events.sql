-- Access, alarm and presence events (docs/domain.md, "Events"), stored by the sink from f2.events in the same
-- transaction as its batch's readings.
--
-- Both editions: the statements below and the sink's write path (streaming/sink/event_sql.py) use no DDL
-- beyond create_hypertable. device_events is not compressed by this migration. Should an operator compress it
-- on the full edition, every write still works: inserts are ON CONFLICT DO NOTHING, and the only UPDATE of
-- device_events rewrites previous_state/previous_duration_s of the few rows a late event changes (rows whose
-- values differ, found by key), which TimescaleDB 2.11+ applies to compressed chunks by decompressing the
-- batches holding them. component_states and controller_presence are plain tables: one row per component or
-- controller, updated in place.

CREATE TABLE IF NOT EXISTS device_events (
    "time" timestamptz NOT NULL,          -- the device's timestamp (presence: the detection/arrival time)
    controller_mac text NOT NULL,
    connector smallint NOT NULL,          -- 1..4; 0 for presence events of the whole controller
    component text NOT NULL,              -- door-sensor-1, reader-2, strike-1, ... ; 'controller' for presence
    kind text NOT NULL CHECK (kind IN ('state', 'access', 'indicator', 'presence')),
    controller_id integer,                -- registry ids where the registry knew them when decoded
    device_id integer,
    state text,                           -- the new state; online/offline for presence
    previous_state text,                  -- the state before (same component and kind), where known
    previous_duration_s double precision, -- how long previous_state lasted (presence: the outage length)
    credential_fingerprint text,
    credential_key_id text,
    credential_length integer,
    indicator_hex text,
    mqtt_topic text,
    PRIMARY KEY ("time", controller_mac, connector, component, kind)
);

-- 7-day chunks: events are a small share of the traffic; a week of a large fleet's events fits a chunk.
-- No default time index: the primary key's leading column serves time-range scans (as for decoded_data).
SELECT create_hypertable('device_events', by_range('time', INTERVAL '7 days'), if_not_exists => TRUE,
    create_default_indexes => FALSE);

-- A component's events in time order: previous state, the current run's start, dashboards per door/reader.
CREATE INDEX IF NOT EXISTS device_events_component_time_idx
    ON device_events (controller_mac, component, "time" DESC);
-- "Where was this card used": f2 credentials fingerprint prints a query on it.
CREATE INDEX IF NOT EXISTS device_events_credential_idx
    ON device_events (credential_fingerprint) WHERE credential_fingerprint IS NOT NULL;

-- The latest state of each component ("door open since when"), kept by the sink from device_events.
CREATE TABLE IF NOT EXISTS component_states (
    controller_mac text NOT NULL,
    connector smallint NOT NULL,
    component text NOT NULL,
    controller_id integer,
    device_id integer,
    state text NOT NULL,
    since timestamptz NOT NULL,           -- time of the first event of the current run of equal states
    last_event_at timestamptz NOT NULL,
    PRIMARY KEY (controller_mac, connector, component)
);

-- Whether each controller talks: online until silent for silence_after_s, then offline until heard again.
CREATE TABLE IF NOT EXISTS controller_presence (
    controller_mac text PRIMARY KEY,
    controller_id integer,
    state text NOT NULL CHECK (state IN ('online', 'offline')),
    since timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    silence_after_s double precision NOT NULL
);

-- The first time of the run of equal states that holds the state event of a component at p_time with state
-- p_state: the earliest event after the last one before p_time with another state. NULL when no event of the
-- component is at or before p_time. Two index probes on device_events_component_time_idx.
CREATE OR REPLACE FUNCTION f2_state_run_start(
    p_mac text, p_connector smallint, p_component text, p_time timestamptz, p_state text
) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT e."time"
    FROM device_events e
    WHERE e.controller_mac = p_mac AND e.component = p_component AND e.connector = p_connector
      AND e.kind = 'state' AND e."time" <= p_time
      AND e."time" > coalesce((
          SELECT c."time"
          FROM device_events c
          WHERE c.controller_mac = p_mac AND c.component = p_component AND c.connector = p_connector
            AND c.kind = 'state' AND c."time" < p_time AND c.state IS DISTINCT FROM p_state
          ORDER BY c."time" DESC
          LIMIT 1
      ), '-infinity'::timestamptz)
    ORDER BY e."time"
    LIMIT 1
$$;

-- What a state event of a component at p_time follows: the state of the component's latest state event
-- before it, and how long that state had lasted (from the first event of its run to p_time, in seconds).
-- No row when the event is the component's first. Derived from the stored order by time, never from arrival.
CREATE OR REPLACE FUNCTION f2_previous_state(p_mac text, p_connector smallint, p_component text, p_time timestamptz)
RETURNS TABLE (previous_state text, previous_duration_s double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT prev.state,
           extract(epoch FROM p_time - f2_state_run_start(p_mac, p_connector, p_component, prev."time", prev.state))
               ::double precision
    FROM (
        SELECT e.state, e."time"
        FROM device_events e
        WHERE e.controller_mac = p_mac AND e.component = p_component AND e.connector = p_connector
          AND e.kind = 'state' AND e."time" < p_time
        ORDER BY e."time" DESC
        LIMIT 1
    ) AS prev
$$;
