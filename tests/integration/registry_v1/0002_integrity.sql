-- What the original layout lacks, added without renaming anything: keys, uniqueness, and the platform's
-- own columns (plausible range, frame check, expected interval) with defaults that keep old rows valid.
ALTER TABLE "VtDevice".devicetemplates
    ADD CONSTRAINT devicetemplates_devicetypeid_fkey
        FOREIGN KEY (devicetypeid) REFERENCES "VtDevice".devicetypes (devicetypeid),
    ADD COLUMN frame_check text NOT NULL DEFAULT 'none'
        CONSTRAINT devicetemplates_frame_check_check CHECK (frame_check IN ('none', 'modbus-crc16')),
    ADD COLUMN expected_interval_s integer
        CONSTRAINT devicetemplates_expected_interval_check CHECK (expected_interval_s > 0);

ALTER TABLE "VtDevice".devices
    ADD CONSTRAINT devices_devicetemplateid_fkey
        FOREIGN KEY (devicetemplateid) REFERENCES "VtDevice".devicetemplates (devicetemplateid),
    ADD CONSTRAINT devices_macaddress_format_check CHECK (macaddress ~ '^[0-9a-f]{12}$'),
    ADD CONSTRAINT devices_macaddress_key UNIQUE (macaddress);

ALTER TABLE "VtDevice".connectors
    ADD CONSTRAINT connectors_controllerid_fkey
        FOREIGN KEY (controllerid) REFERENCES "VtDevice".devices (deviceid) ON DELETE CASCADE,
    ADD CONSTRAINT connectors_connectornumber_check CHECK (connectornumber BETWEEN 1 AND 4),
    ADD CONSTRAINT connectors_controller_number_key UNIQUE (controllerid, connectornumber);

ALTER TABLE "VtDevice".pins
    ADD CONSTRAINT pins_connectorid_fkey
        FOREIGN KEY (connectorid) REFERENCES "VtDevice".connectors (connectorid) ON DELETE CASCADE,
    ADD CONSTRAINT pins_deviceid_fkey
        FOREIGN KEY (deviceid) REFERENCES "VtDevice".devices (deviceid) ON DELETE SET NULL,
    ADD CONSTRAINT pins_position_check CHECK (position BETWEEN 1 AND 6),
    ADD CONSTRAINT pins_connector_position_key UNIQUE (connectorid, position);

ALTER TABLE "VtDevice".datapoints
    ADD CONSTRAINT datapoints_devicetemplateid_fkey
        FOREIGN KEY (devicetemplateid) REFERENCES "VtDevice".devicetemplates (devicetemplateid) ON DELETE CASCADE,
    ADD CONSTRAINT datapoints_datapointiconid_fkey
        FOREIGN KEY (datapointiconid) REFERENCES "VtDevice".datapointicons (id),
    ADD CONSTRAINT datapoints_template_label_key UNIQUE (devicetemplateid, label),
    ADD CONSTRAINT datapoints_dataencoding_check
        CHECK (dataencoding IN ('Int8', 'Uint8', 'Int16', 'Uint16', 'Int32', 'Uint32', 'Float32', 'Bool')),
    ADD CONSTRAINT datapoints_layout_check CHECK ("offset" >= 0 AND length >= 0 AND decimals >= 0),
    ADD COLUMN min_value double precision,
    ADD COLUMN max_value double precision,
    ADD CONSTRAINT datapoints_range_check CHECK (min_value IS NULL OR max_value IS NULL OR min_value <= max_value);

CREATE UNIQUE INDEX IF NOT EXISTS devicetypes_typename_key ON "VtDevice".devicetypes (typename);
CREATE UNIQUE INDEX IF NOT EXISTS devicetemplates_name_key ON "VtDevice".devicetemplates (name);
-- A wired device sits on one pin only.
CREATE UNIQUE INDEX IF NOT EXISTS pins_deviceid_key ON "VtDevice".pins (deviceid) WHERE deviceid IS NOT NULL;
