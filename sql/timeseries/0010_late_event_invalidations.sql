-- Late events: the windows of events_hourly and events_daily (0007) that a late event changed, logged in
-- aggregate_invalidations (0002) as late readings log theirs, so the late-data sensor asks for those partitions
-- again (f2_platform/defs/aggregates/late_data_sensor.py) and their run consumes the entries it saw.
--
-- Which windows an event changes:
-- - its own (the counts per kind and state, access attempts, distinct credentials);
-- - for a door's state event or a presence event that changes the state it follows (its previous_state, as
--   the sink stored it): every window from its own to that of the component's next event of the same kind,
--   which is where the state it starts ends (door-open time, outages, and the next event's previous state,
--   which counts openings and outages); with no next event, every window up to now, but at most 31 days of
--   them (`horizon`: a state change that arrives more than 31 days after its time with nothing after it marks
--   31 days of windows; a backfill recomputes the rest, docs/operations-replay-trace.md).
--
-- Events of the hour under way are not logged (its partition does not exist yet): the sink's steady stream of
-- current events costs one comparison per row. BEFORE, not AFTER, row trigger, as decoded_data's (0005):
-- TimescaleDB refuses AFTER ROW INSERT triggers on inserts into compressed chunks. A redelivered event
-- (ON CONFLICT DO NOTHING) fires it too, which at worst recomputes a window once more.
CREATE OR REPLACE FUNCTION f2_log_late_event() RETURNS trigger
LANGUAGE plpgsql
-- One plan per session for the lookup of the next event (see f2_state_run_start in 0006).
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    horizon CONSTANT interval := INTERVAL '744 hours';
    until timestamptz := NEW."time";
BEGIN
    IF ((NEW.kind = 'state' AND NEW.component LIKE 'door-sensor-%') OR NEW.kind = 'presence')
       AND NEW.previous_state IS DISTINCT FROM NEW.state THEN
        SELECT d."time" INTO until
        FROM device_events d
        WHERE d.controller_mac = NEW.controller_mac AND d.component = NEW.component
          AND d.connector = NEW.connector AND d.kind = NEW.kind AND d."time" > NEW."time"
        ORDER BY d."time"
        LIMIT 1;
        IF NOT FOUND THEN
            until := clock_timestamp();
        END IF;
        until := least(until, NEW."time" + horizon);
    END IF;
    -- Whole hours and days in UTC (intervals of hours, never of days, which follow the session's time zone).
    INSERT INTO aggregate_invalidations (aggregate, bucket)
    SELECT 'events_hourly', b
    FROM generate_series(time_bucket(INTERVAL '1 hour', NEW."time"), time_bucket(INTERVAL '1 hour', until),
                         INTERVAL '1 hour') AS b
    UNION ALL
    SELECT 'events_daily', b
    FROM generate_series(time_bucket(INTERVAL '1 day', NEW."time"), time_bucket(INTERVAL '1 day', until),
                         INTERVAL '24 hours') AS b
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS device_events_late_insert ON device_events;
CREATE TRIGGER device_events_late_insert
    BEFORE INSERT ON device_events
    FOR EACH ROW
    WHEN (NEW."time" < time_bucket(INTERVAL '1 hour', clock_timestamp()))
    EXECUTE FUNCTION f2_log_late_event();
