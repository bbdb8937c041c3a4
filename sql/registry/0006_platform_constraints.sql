-- The keys and constraints the platform relies on, added to any registry without ever failing on its rows:
-- a constraint that existing rows break is added NOT VALID (new writes are checked at once; the rows stay),
-- and a key that duplicate rows prevent is not created. `f2 db check` lists the rows that break each one,
-- with the SQL that repairs them; `f2 db validate` then validates and creates what is outstanding. The same
-- list is f2_platform/db/registry_constraints.py (a unit test keeps the two equal).
--
-- Kept out on purpose (docs/domain.md §7, "What the platform adds"): no foreign key on
-- datapoints.datapointiconid (the reference writes 0, "no icon", and the platform never reads it), on
-- devicetemplates.devicetypeid (its tools point at types that do not exist; never read in decoding) or on
-- devices.devicetemplateid (its sample data gives devices template ids that do not exist; the processor
-- dead-letters a wired device whose template is missing, naming it). pins.deviceid is NOT NULL in the
-- reference, so deleting a wired device removes its pin (ON DELETE CASCADE) instead of setting it NULL.
CREATE FUNCTION pg_temp.f2_unique(tbl text, name text, spec text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass(format('"VtDevice".%I', name)) IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('CREATE UNIQUE INDEX %I ON "VtDevice".%I %s', name, tbl, spec);
    EXCEPTION WHEN unique_violation THEN
        RAISE NOTICE 'f2: % not created: rows of % break it (f2 db check lists them; f2 db validate creates it)', name, tbl;
    END;
END;
$$;

CREATE FUNCTION pg_temp.f2_primary_key(tbl text, name text, spec text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = to_regclass(format('"VtDevice".%I', tbl)) AND contype = 'p') THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('ALTER TABLE "VtDevice".%I ADD CONSTRAINT %I PRIMARY KEY %s', tbl, name, spec);
    EXCEPTION WHEN unique_violation OR not_null_violation THEN
        RAISE NOTICE 'f2: % not created: rows of % break it (f2 db check lists them; f2 db validate creates it)', name, tbl;
    END;
END;
$$;

CREATE FUNCTION pg_temp.f2_constraint(tbl text, name text, spec text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = to_regclass(format('"VtDevice".%I', tbl)) AND conname = name) THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('ALTER TABLE "VtDevice".%I ADD CONSTRAINT %I %s NOT VALID', tbl, name, spec);
    EXCEPTION WHEN invalid_foreign_key THEN
        -- The referenced table has no key yet (duplicate ids kept it from being made).
        RAISE NOTICE 'f2: % not created: %', name, SQLERRM;
        RETURN;
    END;
    BEGIN
        EXECUTE format('ALTER TABLE "VtDevice".%I VALIDATE CONSTRAINT %I', tbl, name);
    EXCEPTION WHEN check_violation OR foreign_key_violation THEN
        RAISE NOTICE 'f2: % added NOT VALID: existing rows of % break it, new writes are checked (f2 db check lists the rows; f2 db validate validates it once they are repaired)', name, tbl;
    END;
END;
$$;

SELECT pg_temp.f2_primary_key('devicetypes', 'devicetypes_pkey', $$(devicetypeid)$$);
SELECT pg_temp.f2_primary_key('devicetemplates', 'devicetemplates_pkey', $$(devicetemplateid)$$);
SELECT pg_temp.f2_primary_key('devices', 'devices_pkey', $$(deviceid)$$);
SELECT pg_temp.f2_primary_key('connectors', 'connectors_pkey', $$(connectorid)$$);
SELECT pg_temp.f2_primary_key('pins', 'pins_pkey', $$(pinid)$$);
SELECT pg_temp.f2_primary_key('datapointicons', 'datapointicons_pkey', $$(id)$$);
SELECT pg_temp.f2_primary_key('datapoints', 'datapoints_pkey', $$(datapointid)$$);

SELECT pg_temp.f2_unique('devicetypes', 'devicetypes_typename_key', $$(typename)$$);
SELECT pg_temp.f2_unique('devicetemplates', 'devicetemplates_name_key', $$(name)$$);
SELECT pg_temp.f2_unique('devices', 'devices_macaddress_key', $$(macaddress)$$);
SELECT pg_temp.f2_unique('connectors', 'connectors_controller_number_key', $$(controllerid, connectornumber)$$);
SELECT pg_temp.f2_unique('pins', 'pins_connector_position_key', $$(connectorid, position)$$);
SELECT pg_temp.f2_unique('pins', 'pins_deviceid_key', $$(deviceid) WHERE deviceid IS NOT NULL$$);
SELECT pg_temp.f2_unique('datapoints', 'datapoints_template_label_key', $$(devicetemplateid, label)$$);

SELECT pg_temp.f2_constraint('devicetemplates', 'devicetemplates_frame_check_check', $$CHECK (frame_check IN ('none', 'modbus-crc16'))$$);
SELECT pg_temp.f2_constraint('devicetemplates', 'devicetemplates_expected_interval_check', $$CHECK (expected_interval_s > 0)$$);
SELECT pg_temp.f2_constraint('devices', 'devices_macaddress_format_check', $$CHECK (macaddress ~ '^[0-9a-f]{12}$')$$);
SELECT pg_temp.f2_constraint('connectors', 'connectors_controllerid_fkey', $$FOREIGN KEY (controllerid) REFERENCES "VtDevice".devices (deviceid) ON DELETE CASCADE$$);
SELECT pg_temp.f2_constraint('connectors', 'connectors_connectornumber_check', $$CHECK (connectornumber BETWEEN 1 AND 4)$$);
SELECT pg_temp.f2_constraint('pins', 'pins_connectorid_fkey', $$FOREIGN KEY (connectorid) REFERENCES "VtDevice".connectors (connectorid) ON DELETE CASCADE$$);
SELECT pg_temp.f2_constraint('pins', 'pins_deviceid_fkey', $$FOREIGN KEY (deviceid) REFERENCES "VtDevice".devices (deviceid) ON DELETE CASCADE$$);
SELECT pg_temp.f2_constraint('pins', 'pins_position_check', $$CHECK (position BETWEEN 1 AND 6)$$);
SELECT pg_temp.f2_constraint('datapoints', 'datapoints_devicetemplateid_fkey', $$FOREIGN KEY (devicetemplateid) REFERENCES "VtDevice".devicetemplates (devicetemplateid) ON DELETE CASCADE$$);
SELECT pg_temp.f2_constraint('datapoints', 'datapoints_dataencoding_check', $$CHECK (dataencoding IN ('Int8', 'Uint8', 'Int16', 'Uint16', 'Int32', 'Uint32', 'Float32', 'Bool'))$$);
SELECT pg_temp.f2_constraint('datapoints', 'datapoints_layout_check', $$CHECK ("offset" >= 0 AND length >= 0 AND decimals >= 0)$$);
SELECT pg_temp.f2_constraint('datapoints', 'datapoints_range_check', $$CHECK (min_value IS NULL OR max_value IS NULL OR min_value <= max_value)$$);
