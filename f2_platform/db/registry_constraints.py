"""The keys and constraints the platform adds to a registry (registry migration 0006), as data.

`f2 db check` reports their state (valid, NOT VALID, missing) with the rows that break them, and `f2 db
validate` validates or creates what is outstanding. sql/registry/0006_platform_constraints.sql adds the same
list; tests/unit/test_registry_rules.py keeps the two equal. Pure: the statements are built here and run by
f2_platform/db/registry_check.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from streaming.registry_schema import in_schema

Kind = Literal["primary-key", "unique", "check", "foreign-key"]


@dataclass(frozen=True)
class PlatformConstraint:
    name: str
    table: str
    kind: Kind
    spec: str  # as written in 0006: "(columns) [WHERE ...]" for keys, the constraint body otherwise
    rule: str  # the f2 db check rule whose rows break it (f2_platform/db/registry_rules.py)

    def add_sql(self, schema: str) -> str:
        """The statement that adds it: keys directly, CHECK and FOREIGN KEY constraints NOT VALID."""
        if self.kind == "unique":
            return in_schema(f'CREATE UNIQUE INDEX "{self.name}" ON "VtDevice".{self.table} {self.spec}', schema)
        if self.kind == "primary-key":
            return in_schema(
                f'ALTER TABLE "VtDevice".{self.table} ADD CONSTRAINT "{self.name}" PRIMARY KEY {self.spec}', schema
            )
        return in_schema(
            f'ALTER TABLE "VtDevice".{self.table} ADD CONSTRAINT "{self.name}" {self.spec} NOT VALID', schema
        )

    def validate_sql(self, schema: str) -> str:
        return in_schema(f'ALTER TABLE "VtDevice".{self.table} VALIDATE CONSTRAINT "{self.name}"', schema)


def _pk(table: str, column: str) -> PlatformConstraint:
    return PlatformConstraint(f"{table}_pkey", table, "primary-key", f"({column})", f"{table}-id-unique")


ENCODINGS: Final = ("Int8", "Uint8", "Int16", "Uint16", "Int32", "Uint32", "Float32", "Bool")

CONSTRAINTS: Final[tuple[PlatformConstraint, ...]] = (
    _pk("devicetypes", "devicetypeid"),
    _pk("devicetemplates", "devicetemplateid"),
    _pk("devices", "deviceid"),
    _pk("connectors", "connectorid"),
    _pk("pins", "pinid"),
    _pk("datapointicons", "id"),
    _pk("datapoints", "datapointid"),
    PlatformConstraint("devicetypes_typename_key", "devicetypes", "unique", "(typename)", "type-name-unique"),
    PlatformConstraint("devicetemplates_name_key", "devicetemplates", "unique", "(name)", "template-name-unique"),
    PlatformConstraint("devices_macaddress_key", "devices", "unique", "(macaddress)", "controller-mac-unique"),
    PlatformConstraint(
        "connectors_controller_number_key",
        "connectors",
        "unique",
        "(controllerid, connectornumber)",
        "connector-unique",
    ),
    PlatformConstraint("pins_connector_position_key", "pins", "unique", "(connectorid, position)", "pin-unique"),
    PlatformConstraint(
        "pins_deviceid_key", "pins", "unique", "(deviceid) WHERE deviceid IS NOT NULL", "device-on-one-pin"
    ),
    PlatformConstraint(
        "datapoints_template_label_key",
        "datapoints",
        "unique",
        "(devicetemplateid, label)",
        "datapoint-label-unique",
    ),
    PlatformConstraint(
        "devicetemplates_frame_check_check",
        "devicetemplates",
        "check",
        "CHECK (frame_check IN ('none', 'modbus-crc16'))",
        "template-frame-check",
    ),
    PlatformConstraint(
        "devicetemplates_expected_interval_check",
        "devicetemplates",
        "check",
        "CHECK (expected_interval_s > 0)",
        "template-interval",
    ),
    PlatformConstraint(
        "devices_macaddress_format_check",
        "devices",
        "check",
        "CHECK (macaddress ~ '^[0-9a-f]{12}$')",
        "controller-mac-format",
    ),
    PlatformConstraint(
        "connectors_controllerid_fkey",
        "connectors",
        "foreign-key",
        'FOREIGN KEY (controllerid) REFERENCES "VtDevice".devices (deviceid) ON DELETE CASCADE',
        "connector-controller-exists",
    ),
    PlatformConstraint(
        "connectors_connectornumber_check",
        "connectors",
        "check",
        "CHECK (connectornumber BETWEEN 1 AND 4)",
        "connector-number-range",
    ),
    PlatformConstraint(
        "pins_connectorid_fkey",
        "pins",
        "foreign-key",
        'FOREIGN KEY (connectorid) REFERENCES "VtDevice".connectors (connectorid) ON DELETE CASCADE',
        "pin-connector-exists",
    ),
    PlatformConstraint(
        "pins_deviceid_fkey",
        "pins",
        "foreign-key",
        'FOREIGN KEY (deviceid) REFERENCES "VtDevice".devices (deviceid) ON DELETE CASCADE',
        "pin-device-exists",
    ),
    PlatformConstraint(
        "pins_position_check", "pins", "check", "CHECK (position BETWEEN 1 AND 6)", "pin-position-range"
    ),
    PlatformConstraint(
        "datapoints_devicetemplateid_fkey",
        "datapoints",
        "foreign-key",
        'FOREIGN KEY (devicetemplateid) REFERENCES "VtDevice".devicetemplates (devicetemplateid) ON DELETE CASCADE',
        "datapoint-template-exists",
    ),
    PlatformConstraint(
        "datapoints_dataencoding_check",
        "datapoints",
        "check",
        "CHECK (dataencoding IN (" + ", ".join(f"'{e}'" for e in ENCODINGS) + "))",
        "datapoint-encoding",
    ),
    PlatformConstraint(
        "datapoints_layout_check",
        "datapoints",
        "check",
        'CHECK ("offset" >= 0 AND length >= 0 AND decimals >= 0)',
        "datapoint-layout",
    ),
    PlatformConstraint(
        "datapoints_range_check",
        "datapoints",
        "check",
        "CHECK (min_value IS NULL OR max_value IS NULL OR min_value <= max_value)",
        "datapoint-range",
    ),
)

# Foreign keys an earlier version of the platform added and the platform no longer keeps (0005 drops them
# where that version made them): the reference deployment's tools write rows that break them by design.
NOT_KEPT: Final[dict[str, str]] = {
    "datapoints_datapointiconid_fkey": "datapointiconid 0 means 'no icon' to the reference's tools; never read",
    "devicetemplates_devicetypeid_fkey": "the reference's tools point templates at types that do not exist; "
    "never read in decoding",
    "devices_devicetemplateid_fkey": "the reference's sample data gives devices template ids that do not exist; "
    "a wired one is dead-lettered with that reason and f2 db check lists it",
}

State = Literal["valid", "not-valid", "missing"]
