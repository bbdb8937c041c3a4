"""The rules the platform relies on in a registry's rows, as data: what each selects, what it means for the
platform, and the SQL that would repair a row. `f2 db check` runs them (f2_platform/db/registry_check.py);
everything here is pure and unit-tested.

A rule's query is written against "VtDevice" and returns the rows that break it: the row's id first, then the
facts the problem and the fix are made from. A fix is SQL for the operator to review and run; where the right
value cannot be known (which of two controllers owns a MAC), it is a template with the choice as a comment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from psycopg import sql

from f2_platform.db.registry_constraints import ENCODINGS
from streaming.registry_schema import in_schema

Row = Sequence[Any]
Severity = Literal["repair"]
MAC: Final = re.compile(r"[0-9a-f]{12}")
SIZES: Final[dict[str, int]] = {"Int8": 1, "Uint8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Float32": 4}


def literal(value: object) -> str:
    """An SQL literal of `value` (quoted by psycopg's rules), for fixes shown to the operator."""
    return sql.Literal(value).as_string(None)


@dataclass(frozen=True)
class RowRule:
    name: str
    table: str
    key: str  # the id column the first value of each row is
    effect: str  # what the platform does with such rows until they are repaired
    query: str  # against "VtDevice"
    problem: Callable[[Row], str]
    fix: Callable[[Row], str]  # against "VtDevice"; in_schema() names the configured schema
    needs: tuple[tuple[str, str], ...] = ()  # (table, column) the query reads beyond the reference's columns

    def sql(self, schema: str) -> str:
        return in_schema(self.query, schema)

    @property
    def tables(self) -> frozenset[str]:
        """The registry tables the query reads."""
        return frozenset(re.findall(r'"VtDevice"\.(\w+)', self.query))

    def fix_sql(self, row: Row, schema: str) -> str:
        return in_schema(self.fix(row), schema)


# ------------------------------------------------------------------------------------------------ fixes


def _mac_fix(row: Row) -> str:
    device_id, mac = row[0], row[1]
    normalised = re.sub(r"[^0-9a-f]", "", str(mac).lower())
    if not str(mac).strip():
        return f'UPDATE "VtDevice".devices SET macaddress = NULL WHERE deviceid = {device_id};  -- not a controller'
    if MAC.fullmatch(normalised):
        return f'UPDATE "VtDevice".devices SET macaddress = {literal(normalised)} WHERE deviceid = {device_id};'
    return (
        f"-- set the controller's eth0 MAC (12 lowercase hex digits), or NULL if it is not a controller:\n"
        f"UPDATE \"VtDevice\".devices SET macaddress = '<mac>' WHERE deviceid = {device_id};"
    )


def _encoding_fix(row: Row) -> str:
    datapoint_id, encoding, length = row[0], row[1], row[2]
    exact = {e.lower(): e for e in ENCODINGS}.get(str(encoding or "").strip().lower())
    if exact is not None:
        return f'UPDATE "VtDevice".datapoints SET dataencoding = {literal(exact)} WHERE datapointid = {datapoint_id};'
    fitting = [e for e, size in SIZES.items() if size == length] or (["Bool"] if length == 0 else list(ENCODINGS))
    return (
        f"-- the encoding of the sensor's register ({' or '.join(fitting)} fit length {length}):\n"
        f'UPDATE "VtDevice".datapoints SET dataencoding = {literal(fitting[0])} WHERE datapointid = {datapoint_id};'
    )


def _delete(table: str, key: str) -> Callable[[Row], str]:
    return lambda row: f'DELETE FROM "VtDevice".{table} WHERE {key} = {row[0]};'


def _choose(table: str, key: str, column: str, choice: str) -> Callable[[Row], str]:
    return lambda row: (
        f'-- {choice}:\nUPDATE "VtDevice".{table} SET {column} = <value> WHERE {key} = {row[0]};  -- or delete the row'
    )


# ------------------------------------------------------------------------------------------------ rules


def _duplicates(table: str, key: str, columns: str, where: str = "") -> str:
    """Every row but the first (lowest id) of each group sharing `columns`; facts: the columns, the id kept,
    the number of rows in the group."""
    condition = f"WHERE {where}" if where else ""
    return f"""
SELECT {key}, {columns}, first_id, copies FROM (
    SELECT {key}, {columns}, min({key}) OVER w AS first_id, count(*) OVER w AS copies
    FROM "VtDevice".{table} {condition}
    WINDOW w AS (PARTITION BY {columns})
) AS grouped
WHERE copies > 1 AND {key} <> first_id
ORDER BY {key}
"""


def _id_unique(table: str, key: str) -> RowRule:
    return RowRule(
        f"{table}-id-unique",
        table,
        key,
        "the table cannot get its primary key, and the foreign keys that point at it wait for it",
        f"""
SELECT {key}, count(*) FROM "VtDevice".{table} WHERE {key} IS NOT NULL GROUP BY {key} HAVING count(*) > 1
ORDER BY {key}
""",
        lambda row: f"{key} {row[0]} is held by {row[1]} rows",
        lambda row: f"-- give all but one of the {row[1]} rows with {key} = {row[0]} another id (or delete them)",
    )


RULES: Final[tuple[RowRule, ...]] = (
    *(
        _id_unique(t, k)
        for t, k in (
            ("devicetypes", "devicetypeid"),
            ("devicetemplates", "devicetemplateid"),
            ("devices", "deviceid"),
            ("connectors", "connectorid"),
            ("pins", "pinid"),
            ("datapointicons", "id"),
            ("datapoints", "datapointid"),
        )
    ),
    RowRule(
        "controller-mac-format",
        "devices",
        "deviceid",
        "the controller's messages are dead-lettered as unknown-controller: topics carry the MAC as 12 lowercase "
        "hex digits",
        """
SELECT deviceid, macaddress FROM "VtDevice".devices
WHERE macaddress IS NOT NULL AND macaddress !~ '^[0-9a-f]{12}$' ORDER BY deviceid
""",
        lambda row: f"macaddress {row[1]!r} is not 12 lowercase hex digits without separators",
        _mac_fix,
    ),
    RowRule(
        "controller-mac-unique",
        "devices",
        "deviceid",
        "messages of that MAC are decoded against the wiring of all its controllers at once",
        _duplicates("devices", "deviceid", "macaddress", "macaddress IS NOT NULL"),
        lambda row: f"macaddress {row[1]!r} is also device {row[2]}'s ({row[3]} devices share it)",
        lambda row: (
            f"-- one MAC, one controller: give device {row[0]} its own MAC, or none if it is not a controller\n"
            f'UPDATE "VtDevice".devices SET macaddress = NULL WHERE deviceid = {row[0]};'
        ),
    ),
    RowRule(
        "connector-number-range",
        "connectors",
        "connectorid",
        "no topic names it (J1..J4): its pins never receive a message",
        'SELECT connectorid, controllerid, connectornumber FROM "VtDevice".connectors '
        "WHERE connectornumber NOT BETWEEN 1 AND 4 ORDER BY connectorid",
        lambda row: f"connectornumber {row[2]} of controller {row[1]} is not 1..4 (J1..J4)",
        _choose("connectors", "connectorid", "connectornumber", "the connector's number, 1..4 for J1..J4"),
    ),
    RowRule(
        "connector-unique",
        "connectors",
        "connectorid",
        "the controller's pins on that connector number are merged from both rows",
        _duplicates("connectors", "connectorid", "controllerid, connectornumber"),
        lambda row: f"controller {row[1]} has connector J{row[2]} also as connector {row[3]} ({row[4]} rows)",
        lambda row: (
            f'UPDATE "VtDevice".pins SET connectorid = {row[3]} WHERE connectorid = {row[0]};  -- check positions\n'
            f'DELETE FROM "VtDevice".connectors WHERE connectorid = {row[0]};'
        ),
    ),
    RowRule(
        "connector-controller-exists",
        "connectors",
        "connectorid",
        "unreachable (no controller); it keeps its foreign key NOT VALID",
        'SELECT c.connectorid, c.controllerid FROM "VtDevice".connectors c WHERE NOT EXISTS '
        '(SELECT 1 FROM "VtDevice".devices d WHERE d.deviceid = c.controllerid) ORDER BY c.connectorid',
        lambda row: f"controllerid {row[1]} is not a device",
        lambda row: (
            f'DELETE FROM "VtDevice".pins WHERE connectorid = {row[0]};\n'
            f'DELETE FROM "VtDevice".connectors WHERE connectorid = {row[0]};'
        ),
    ),
    RowRule(
        "pin-position-range",
        "pins",
        "pinid",
        "no topic names it (positions 1..6): its device never receives a message",
        'SELECT pinid, connectorid, position FROM "VtDevice".pins WHERE position NOT BETWEEN 1 AND 6 ORDER BY pinid',
        lambda row: f"position {row[2]} on connector {row[1]} is not 1..6",
        _choose("pins", "pinid", "position", "the pin's position, 1..6"),
    ),
    RowRule(
        "pin-unique",
        "pins",
        "pinid",
        "two devices claim one position: its messages are decoded for the first only",
        _duplicates("pins", "pinid", "connectorid, position"),
        lambda row: f"position {row[2]} of connector {row[1]} is also pin {row[3]} ({row[4]} pins)",
        _delete("pins", "pinid"),
    ),
    RowRule(
        "pin-connector-exists",
        "pins",
        "pinid",
        "unreachable (no connector); it keeps its foreign key NOT VALID",
        'SELECT p.pinid, p.connectorid FROM "VtDevice".pins p WHERE NOT EXISTS '
        '(SELECT 1 FROM "VtDevice".connectors c WHERE c.connectorid = p.connectorid) ORDER BY p.pinid',
        lambda row: f"connectorid {row[1]} is not a connector",
        _delete("pins", "pinid"),
    ),
    RowRule(
        "pin-device-exists",
        "pins",
        "pinid",
        "its messages are dead-lettered as unwired-position (no device is there)",
        'SELECT p.pinid, p.deviceid FROM "VtDevice".pins p WHERE p.deviceid IS NOT NULL AND NOT EXISTS '
        '(SELECT 1 FROM "VtDevice".devices d WHERE d.deviceid = p.deviceid) ORDER BY p.pinid',
        lambda row: f"deviceid {row[1]} is not a device",
        _delete("pins", "pinid"),
    ),
    RowRule(
        "device-on-one-pin",
        "pins",
        "pinid",
        "one device's readings come from two places and cannot be told apart",
        _duplicates("pins", "pinid", "deviceid", "deviceid IS NOT NULL"),
        lambda row: f"device {row[1]} is also wired at pin {row[2]} ({row[3]} pins)",
        _delete("pins", "pinid"),
    ),
    RowRule(
        "wired-device-template-exists",
        "devices",
        "deviceid",
        "its messages are dead-lettered as unwired-position, naming the missing template",
        """
SELECT d.deviceid, d.devicename, d.devicetemplateid FROM "VtDevice".devices d
WHERE EXISTS (SELECT 1 FROM "VtDevice".pins p WHERE p.deviceid = d.deviceid)
  AND NOT EXISTS (SELECT 1 FROM "VtDevice".devicetemplates t WHERE t.devicetemplateid = d.devicetemplateid)
ORDER BY d.deviceid
""",
        lambda row: (
            f"wired device {row[1]!r} has "
            + ("no template (NULL)" if row[2] is None else f"template id {row[2]}, which does not exist")
        ),
        lambda row: (
            f'-- the template of the sensor model wired there (SELECT devicetemplateid, name FROM "VtDevice".'
            f'devicetemplates):\nUPDATE "VtDevice".devices SET devicetemplateid = <id> WHERE deviceid = {row[0]};'
        ),
    ),
    RowRule(
        "datapoint-encoding",
        "datapoints",
        "datapointid",
        "frames (and status fields of its label) of every device with its template are dead-lettered as "
        "frame-length, naming the datapoint and the encoding found",
        'SELECT datapointid, dataencoding, length, label, devicetemplateid FROM "VtDevice".datapoints '
        "WHERE dataencoding IS NULL OR dataencoding NOT IN ("
        + ", ".join(f"'{e}'" for e in ENCODINGS)
        + ") ORDER BY datapointid",
        lambda row: (
            f"datapoint {row[3]!r} of template {row[4]} has dataencoding {row[1]!r}; expected one of "
            + ", ".join(ENCODINGS)
        ),
        _encoding_fix,
    ),
    RowRule(
        "datapoint-length",
        "datapoints",
        "datapointid",
        "frames of every device with its template are dead-lettered as frame-length",
        'SELECT datapointid, dataencoding, length, label FROM "VtDevice".datapoints WHERE length <> CASE dataencoding '
        + " ".join(f"WHEN '{e}' THEN {n}" for e, n in SIZES.items())
        + " ELSE length END ORDER BY datapointid",
        lambda row: f"datapoint {row[3]!r} is {row[1]} but has length {row[2]}; {row[1]} is {SIZES[row[1]]} bytes",
        lambda row: (
            f'UPDATE "VtDevice".datapoints SET length = {SIZES[row[1]]} WHERE datapointid = {row[0]};'
            "  -- or correct its dataencoding"
        ),
    ),
    RowRule(
        "datapoint-layout",
        "datapoints",
        "datapointid",
        "frames of every device with its template are dead-lettered (negative offset) or mis-scaled",
        'SELECT datapointid, "offset", length, decimals, label FROM "VtDevice".datapoints '
        'WHERE "offset" < 0 OR length < 0 OR decimals < 0 ORDER BY datapointid',
        lambda row: (
            f"datapoint {row[4]!r} has offset {row[1]}, length {row[2]}, decimals {row[3]}; none may be negative"
        ),
        _choose(
            "datapoints", "datapointid", '"offset" / length / decimals', "the values from the sensor's register map"
        ),
    ),
    RowRule(
        "datapoint-label-unique",
        "datapoints",
        "datapointid",
        "a status field of that label becomes a reading of both datapoints",
        _duplicates("datapoints", "datapointid", "devicetemplateid, label"),
        lambda row: f"template {row[1]} has label {row[2]!r} also as datapoint {row[3]} ({row[4]} datapoints)",
        lambda row: (
            f"UPDATE \"VtDevice\".datapoints SET label = label || ' ({row[0]})' WHERE datapointid = {row[0]};"
            "  -- or delete the duplicate"
        ),
    ),
    RowRule(
        "datapoint-template-exists",
        "datapoints",
        "datapointid",
        "unused (no template); it keeps its foreign key NOT VALID",
        'SELECT d.datapointid, d.devicetemplateid FROM "VtDevice".datapoints d WHERE NOT EXISTS '
        '(SELECT 1 FROM "VtDevice".devicetemplates t WHERE t.devicetemplateid = d.devicetemplateid) '
        "ORDER BY d.datapointid",
        lambda row: f"devicetemplateid {row[1]} is not a template",
        _delete("datapoints", "datapointid"),
    ),
    RowRule(
        "datapoint-range",
        "datapoints",
        "datapointid",
        "every reading of it is reported implausible",
        'SELECT datapointid, min_value, max_value FROM "VtDevice".datapoints WHERE min_value > max_value '
        "ORDER BY datapointid",
        lambda row: f"min_value {row[1]} is above max_value {row[2]}",
        lambda row: (
            f'UPDATE "VtDevice".datapoints SET min_value = {row[2]}, max_value = {row[1]} WHERE datapointid = {row[0]};'
        ),
        needs=(("datapoints", "min_value"), ("datapoints", "max_value")),
    ),
    RowRule(
        "template-name-unique",
        "devicetemplates",
        "devicetemplateid",
        "templates are looked up by name (f2 db seed-sample, the simulator): the name is ambiguous",
        _duplicates("devicetemplates", "devicetemplateid", "name"),
        lambda row: f"name {row[1]!r} is also template {row[2]}'s ({row[3]} templates)",
        lambda row: (
            f"UPDATE \"VtDevice\".devicetemplates SET name = name || ' ({row[0]})' WHERE devicetemplateid = {row[0]};"
        ),
    ),
    RowRule(
        "type-name-unique",
        "devicetypes",
        "devicetypeid",
        "device types are looked up by name (f2 db seed-sample): the name is ambiguous",
        _duplicates("devicetypes", "devicetypeid", "typename"),
        lambda row: f"typename {row[1]!r} is also type {row[2]}'s ({row[3]} types)",
        lambda row: (
            f"UPDATE \"VtDevice\".devicetypes SET typename = typename || ' ({row[0]})' WHERE devicetypeid = {row[0]};"
        ),
    ),
    RowRule(
        "template-frame-check",
        "devicetemplates",
        "devicetemplateid",
        "frames are checked as if the template said 'none'",
        'SELECT devicetemplateid, frame_check FROM "VtDevice".devicetemplates '
        "WHERE frame_check NOT IN ('none', 'modbus-crc16') ORDER BY devicetemplateid",
        lambda row: f"frame_check {row[1]!r} is not 'none' or 'modbus-crc16'",
        lambda row: (
            f"UPDATE \"VtDevice\".devicetemplates SET frame_check = 'modbus-crc16' WHERE devicetemplateid = {row[0]};"
            "  -- or 'none' for frames without a CRC"
        ),
        needs=(("devicetemplates", "frame_check"),),
    ),
    RowRule(
        "template-interval",
        "devicetemplates",
        "devicetemplateid",
        "the data-quality checks cannot judge its devices' silence and completeness",
        'SELECT devicetemplateid, expected_interval_s FROM "VtDevice".devicetemplates WHERE expected_interval_s <= 0 '
        "ORDER BY devicetemplateid",
        lambda row: f"expected_interval_s {row[1]} is not a positive number of seconds",
        lambda row: (
            f'UPDATE "VtDevice".devicetemplates SET expected_interval_s = NULL WHERE devicetemplateid = {row[0]};'
            "  -- NULL: reports on change; or its interval in seconds"
        ),
        needs=(("devicetemplates", "expected_interval_s"),),
    ),
)

RULES_BY_NAME: Final[dict[str, RowRule]] = {rule.name: rule for rule in RULES}
