-- Access, alarm and presence events (docs/domain.md, "Events"), stored by the sink from f2.events in the same
-- transaction as its batch's readings.
--
-- Both editions: the statements below and the sink's write path (streaming/sink/event_sql.py) use no DDL
-- beyond create_hypertable. device_events is not compressed by this migration. Should an operator compress it
-- on the full edition, every write still works: inserts are ON CONFLICT DO NOTHING, and the only UPDATE of
-- device_events rewrites previous_state/previous_duration_s of the rows a late event changes (its successor
-- and the rest of that run of equal states; rows whose values differ, one key each), which TimescaleDB 2.11+
-- applies to compressed chunks by decompressing the batches holding them. Events in order are written once. component_states and controller_presence are plain tables: one row per component or
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

-- The first time of the run of equal states that holds the component's latest state event at or before p_time,
-- from that event's stored values: its own time when it changed the state (or is the component's first), else
-- its time less how long the state had lasted before it. One index probe (device_events_component_time_idx).
-- PL/pgSQL with generic plans (these functions and the two below): each query is planned once per session,
-- and TimescaleDB skips the chunks outside its time bound at run time. Planned at every call, a query costs
-- the planning of every chunk of the hypertable and its indexes: about 20 ms at 53 chunks, against 1 ms to run.
-- The ROWS estimates of the set-returning ones keep the statements that call them cheap in the planner's eyes:
-- with the default of 1000 rows, the sink's statement was JIT-compiled at every batch (25 ms).
CREATE OR REPLACE FUNCTION f2_state_run_start(p_mac text, p_connector smallint, p_component text, p_time timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    e record;
BEGIN
    SELECT d.state, d."time", d.previous_state, d.previous_duration_s INTO e
    FROM device_events d
    WHERE d.controller_mac = p_mac AND d.component = p_component AND d.connector = p_connector
      AND d.kind = 'state' AND d."time" <= p_time
    ORDER BY d."time" DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF e.previous_state IS DISTINCT FROM e.state THEN
        RETURN e."time";
    END IF;
    RETURN e."time" - make_interval(secs => e.previous_duration_s);
END;
$$;

-- What a state event of a component at p_time follows: the state of the component's latest state event
-- before it, and how long that state had lasted (from the first event of its run to p_time, in seconds).
-- No row when the event would be the component's first. Derived from the stored order by time (and the
-- stored values of the event before), never from arrival.
CREATE OR REPLACE FUNCTION f2_previous_state(p_mac text, p_connector smallint, p_component text, p_time timestamptz)
RETURNS TABLE (previous_state text, previous_duration_s double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 1
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    e record;
BEGIN
    SELECT d.state, d."time", d.previous_state AS before, d.previous_duration_s AS lasted INTO e
    FROM device_events d
    WHERE d.controller_mac = p_mac AND d.component = p_component AND d.connector = p_connector
      AND d.kind = 'state' AND d."time" < p_time
    ORDER BY d."time" DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    previous_state := e.state;
    previous_duration_s := extract(epoch FROM p_time - CASE
        WHEN e.before IS DISTINCT FROM e.state THEN e."time"
        ELSE e."time" - make_interval(secs => e.lasted)
    END)::double precision;
    RETURN NEXT;
END;
$$;

-- A component's state events from p_since on, in time order, with their stored previous state and duration:
-- what the sink reorders after storing new events (streaming/sink/event_sql.py, ORDER_SQL).
CREATE OR REPLACE FUNCTION f2_state_events_from(p_mac text, p_connector smallint, p_component text, p_since timestamptz)
RETURNS TABLE ("time" timestamptz, state text, controller_id integer, device_id integer, previous_state text,
               previous_duration_s double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 10
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    SELECT d."time", d.state, d.controller_id, d.device_id, d.previous_state, d.previous_duration_s
    FROM device_events d
    WHERE d.controller_mac = p_mac AND d.component = p_component AND d.connector = p_connector
      AND d.kind = 'state' AND d."time" >= p_since
    ORDER BY d."time";
END;
$$;
