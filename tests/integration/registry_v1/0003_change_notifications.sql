-- Every registry change bumps a version number and announces it on channel f2_registry_changed.
-- Processors key their topology caches (in-process and Redis) by that version, so a change reaches every
-- cache within seconds and a stale entry written concurrently under the old version is never read again.
CREATE TABLE IF NOT EXISTS "VtDevice".f2_registry_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL
);
INSERT INTO "VtDevice".f2_registry_version (version) VALUES (1) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION "VtDevice".f2_notify_registry_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    UPDATE "VtDevice".f2_registry_version SET version = version + 1 RETURNING version INTO v;
    PERFORM pg_notify('f2_registry_changed', v::text);
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['devicetemplates', 'devices', 'connectors', 'pins', 'datapoints'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS f2_registry_changed ON "VtDevice".%I', t);
        EXECUTE format(
            'CREATE TRIGGER f2_registry_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "VtDevice".%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION "VtDevice".f2_notify_registry_change()', t);
    END LOOP;
END;
$$;
