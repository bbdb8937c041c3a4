-- Least-privilege grants for the platform's database roles. f2-init applies this file after the migrations
-- (F2_INIT_GRANTS_SQL), connected as the schema owner; re-running it changes nothing.
--
-- Roles, created beforehand by the DBA (deploy/compose/timescaledb/10-f2-roles.sh does it for Compose):
--   f2_owner      owns the schema: runs the migrations, and Dagster's maintenance (continuous aggregates,
--                 compression, drop_chunks need the hypertable's owner)
--   f2_processor  reads the registry (and LISTENs for its changes)
--   f2_sink       inserts and updates readings: decoded_data and latest_values (and logs late windows
--                 in aggregate_invalidations through their trigger), and events: device_events,
--                 component_states, controller_presence, and its record of each batch (sink_batches);
--                 nothing else
--   f2_grafana    reads the time series and the aggregates for dashboards
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(r, ', ') INTO missing
    FROM unnest(ARRAY['f2_processor', 'f2_sink', 'f2_grafana']) AS r
    WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'roles missing: % (create them before applying grants.sql)', missing;
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The processor: the registry, read-only, where it shares this database ("VtDevice" is the registry schema,
-- F2_REGISTRY_SCHEMA; a registry in its own database gets sql/grants_registry.sql there instead).
DO $$
BEGIN
    IF to_regnamespace('"VtDevice"') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA "VtDevice" TO f2_processor;
        GRANT SELECT ON ALL TABLES IN SCHEMA "VtDevice" TO f2_processor;
        ALTER DEFAULT PRIVILEGES IN SCHEMA "VtDevice" GRANT SELECT ON TABLES TO f2_processor;
    END IF;
END
$$;

-- The sink: its two tables (ON CONFLICT DO UPDATE needs SELECT and UPDATE besides INSERT); no DELETE.
GRANT USAGE ON SCHEMA public TO f2_sink;
GRANT SELECT, INSERT, UPDATE ON decoded_data, latest_values TO f2_sink;
-- Events (timeseries migration 0006): inserted ON CONFLICT DO NOTHING; previous_state of a late event's
-- successors, component_states and controller_presence updated in place (SELECT .. FOR UPDATE needs UPDATE).
GRANT SELECT, INSERT, UPDATE ON device_events, component_states, controller_presence TO f2_sink;
-- The trace's record of each committed batch (timeseries migration 0009): inserted only, in the batch's
-- transaction.
GRANT INSERT ON sink_batches TO f2_sink;
-- The late-data trigger on decoded_data (timeseries migration 0002) logs invalidated aggregate windows as
-- the role that writes the reading.
DO $$
BEGIN
    IF to_regclass('aggregate_invalidations') IS NOT NULL THEN
        GRANT INSERT ON aggregate_invalidations TO f2_sink;
    END IF;
END
$$;

-- Grafana: everything in public read-only, including the aggregates Dagster creates later.
GRANT USAGE ON SCHEMA public TO f2_grafana;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO f2_grafana;
-- The event aggregates (timeseries migration 0007) are written by Dagster as the owner; the sink never
-- touches them (no grant), Grafana reads them (named here so that a narrower grant above keeps them).
DO $$
BEGIN
    IF to_regclass('event_activity_hourly') IS NOT NULL THEN
        GRANT SELECT ON event_counts_hourly, event_counts_daily, event_activity_hourly, event_activity_daily,
            event_alerts TO f2_grafana;
    END IF;
END
$$;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO f2_grafana;
-- The hourly reconciliation's results (timeseries migration 0008): written by Dagster as the schema's owner,
-- read by Grafana's reconciliation panels (named here as well as by the rule above) and the daily report; the
-- daemons' roles get nothing on them.
GRANT SELECT ON reconciliation_results TO f2_grafana;
