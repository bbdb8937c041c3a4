-- The registry's columns with exactly the reference deployment's types, nullability and defaults, whose
-- tools write these tables (docs/domain.md §7 lists them). 0001 created some columns otherwise (realtimechart
-- boolean, uuid of type uuid, description nullable, ...); this brings every column that is still exactly as
-- 0001 created it to the reference's definition. A column with any other definition (the reference's own, or
-- a user's) is not touched: an adopted registry keeps its columns as they are.
--
-- Values: realtimechart true -> 'gauge', false -> ''; historicalchart true -> 'line', false -> '' (the
-- reference's sample data uses 'gauge' and 'line'); wholenumber true -> 1, false -> 0; dataformat as the
-- integer its text holds (NULL -> 0); uuid as its text. NOT NULL: a text column's NULLs become '' and
-- dataformat's and datapointiconid's NULLs their default 0, as the reference writes them; an id column without
-- a default (devicetemplateid, devicetypeid, deviceid, connectortypeid) keeps its NULLs and stays nullable,
-- because no value can be made up for it (f2 db check lists them). A conversion the data or a dependent view
-- prevents leaves that one column as it was, says why (NOTICE), and f2 db check shows it.
--
-- Constraints of the first form of 0002 that the platform no longer keeps (0006 says why), dropped first: one
-- of them would refuse datapointiconid 0 below. Dropped only where that form made them (the ledger says so):
-- a registry's own constraints of the same name are never touched. 0006 adds pins_deviceid_fkey again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM f2_schema_migrations WHERE target = 'registry' AND version = 2
               AND checksum = '61d7a642c36938066efa4d6ecfa9cb2b35f3ade23584fef42b44ff5e21bb195c') THEN
        ALTER TABLE "VtDevice".devicetemplates DROP CONSTRAINT IF EXISTS devicetemplates_devicetypeid_fkey;
        ALTER TABLE "VtDevice".devices DROP CONSTRAINT IF EXISTS devices_devicetemplateid_fkey;
        ALTER TABLE "VtDevice".datapoints DROP CONSTRAINT IF EXISTS datapoints_datapointiconid_fkey;
        ALTER TABLE "VtDevice".pins DROP CONSTRAINT IF EXISTS pins_deviceid_fkey;  -- was ON DELETE SET NULL
    END IF;
END;
$$;

CREATE FUNCTION pg_temp.f2_column_is(tbl text, col text, typ text, not_null boolean, dflt text) RETURNS boolean
LANGUAGE sql AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = to_regclass(format('"VtDevice".%I', tbl)) AND a.attname = col AND NOT a.attisdropped
          AND format_type(a.atttypid, a.atttypmod) = typ AND a.attnotnull = not_null
          AND coalesce(pg_get_expr(d.adbin, d.adrelid), '') = coalesce(dflt, '')
    )
$$;

-- Bring `tbl.col` from 0001's definition (old_*) to the reference's (new_*): `convert` is the USING
-- expression when the type changes, `fill` the value of NULLs before NOT NULL (NULL: none).
CREATE FUNCTION pg_temp.f2_to_reference(
    tbl text, col text, old_type text, old_notnull boolean, old_default text,
    new_type text, new_notnull boolean, new_default text, convert text, fill text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    nulls bigint;
BEGIN
    IF NOT pg_temp.f2_column_is(tbl, col, old_type, old_notnull, old_default) THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('ALTER TABLE "VtDevice".%I ALTER COLUMN %I DROP DEFAULT', tbl, col);
        IF new_type <> old_type THEN
            EXECUTE format('ALTER TABLE "VtDevice".%I ALTER COLUMN %I TYPE %s USING %s', tbl, col, new_type, convert);
        END IF;
        IF new_default IS NOT NULL THEN
            EXECUTE format('ALTER TABLE "VtDevice".%I ALTER COLUMN %I SET DEFAULT %s', tbl, col, new_default);
        END IF;
        IF new_notnull AND NOT old_notnull THEN
            IF fill IS NOT NULL THEN
                EXECUTE format('UPDATE "VtDevice".%I SET %I = %s WHERE %I IS NULL', tbl, col, fill, col);
            END IF;
            EXECUTE format('SELECT count(*) FROM "VtDevice".%I WHERE %I IS NULL', tbl, col) INTO nulls;
            IF nulls = 0 THEN
                EXECUTE format('ALTER TABLE "VtDevice".%I ALTER COLUMN %I SET NOT NULL', tbl, col);
            ELSE
                RAISE NOTICE 'f2: %.% stays nullable: % row(s) hold NULL and no value can be made up for them (the reference has NOT NULL; see f2 db check)', tbl, col, nulls;
            END IF;
        END IF;
    EXCEPTION
        WHEN feature_not_supported OR dependent_objects_still_exist OR invalid_text_representation
             OR numeric_value_out_of_range OR datatype_mismatch OR cannot_coerce OR foreign_key_violation THEN
            RAISE NOTICE 'f2: %.% kept as it was (%): %', tbl, col, old_type, SQLERRM;
    END;
END;
$$;

SELECT pg_temp.f2_to_reference('devicetypes', 'description', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('devicetypes', 'issensor', 'boolean', true, 'false', 'boolean', true, NULL, NULL, NULL);
SELECT pg_temp.f2_to_reference('devicetypes', 'iscontroller', 'boolean', true, 'false', 'boolean', true, NULL, NULL, NULL);

SELECT pg_temp.f2_to_reference('devicetemplates', 'model', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('devicetemplates', 'description', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('devicetemplates', 'devicetypeid', 'integer', false, NULL, 'integer', true, NULL, NULL, NULL);

SELECT pg_temp.f2_to_reference('devices', 'devicetemplateid', 'integer', false, NULL, 'integer', true, NULL, NULL, NULL);
SELECT pg_temp.f2_to_reference('devices', 'claimingcode', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('devices', 'uuid', 'uuid', false, NULL, 'text', false, NULL, 'uuid::text', NULL);

SELECT pg_temp.f2_to_reference('connectors', 'connectortypeid', 'integer', false, NULL, 'integer', true, NULL, NULL, NULL);

SELECT pg_temp.f2_to_reference('pins', 'deviceid', 'integer', false, NULL, 'integer', true, NULL, NULL, NULL);

SELECT pg_temp.f2_to_reference('datapointicons', 'label', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('datapointicons', 'content', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);

SELECT pg_temp.f2_to_reference('datapoints', 'realtimechart', 'boolean', true, 'false', 'text', true, NULL,
    $$CASE WHEN realtimechart THEN 'gauge' ELSE '' END$$, NULL);
SELECT pg_temp.f2_to_reference('datapoints', 'offset', 'integer', true, '0', 'integer', true, NULL, NULL, NULL);
SELECT pg_temp.f2_to_reference('datapoints', 'length', 'integer', true, '0', 'integer', true, NULL, NULL, NULL);
SELECT pg_temp.f2_to_reference('datapoints', 'prepend', 'text', false, NULL, 'text', true, NULL, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('datapoints', 'historicalchart', 'boolean', true, 'false', 'text', true, $$''$$,
    $$CASE WHEN historicalchart THEN 'line' ELSE '' END$$, NULL);
SELECT pg_temp.f2_to_reference('datapoints', 'dataencoding', 'text', true, NULL, 'text', true, $$''$$, NULL, NULL);
SELECT pg_temp.f2_to_reference('datapoints', 'append', 'text', false, NULL, 'text', true, $$''$$, NULL, $$''$$);
SELECT pg_temp.f2_to_reference('datapoints', 'dataformat', 'text', false, NULL, 'integer', true, '0',
    $$nullif(btrim(dataformat), '')::integer$$, '0');
SELECT pg_temp.f2_to_reference('datapoints', 'wholenumber', 'boolean', true, 'false', 'integer', true, '0',
    $$CASE WHEN wholenumber THEN 1 ELSE 0 END$$, NULL);
SELECT pg_temp.f2_to_reference('datapoints', 'datapointiconid', 'integer', false, NULL, 'integer', true, '0', NULL, '0');
