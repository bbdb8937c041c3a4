-- Every registry change is announced on channel f2_registry_changed so that the processors' caches
-- evict what changed within seconds. The payload names the table; listeners evict conservatively.
CREATE OR REPLACE FUNCTION "VtDevice".f2_notify_registry_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('f2_registry_changed', TG_TABLE_NAME);
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
