-- Least-privilege grants in a registry that lives in its own database (F2_REGISTRY_DSN differs from
-- F2_TIMESERIES_DSN): the processor reads the registry and LISTENs for its changes, nothing else. Where the
-- registry shares the time-series database, sql/grants.sql gives the same rights. "VtDevice" is the registry
-- schema (F2_REGISTRY_SCHEMA). Applied by `f2 db migrate` and f2-init, connected as the schema owner;
-- re-running it changes nothing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'f2_processor') THEN
        RAISE EXCEPTION 'role missing: f2_processor (create it before applying grants_registry.sql)';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA "VtDevice" TO f2_processor;
GRANT SELECT ON ALL TABLES IN SCHEMA "VtDevice" TO f2_processor;
ALTER DEFAULT PRIVILEGES IN SCHEMA "VtDevice" GRANT SELECT ON TABLES TO f2_processor;
