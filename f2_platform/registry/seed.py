"""Writes a registry (the sample, or a generated fleet) idempotently, keyed by natural names.

Statements name the schema "VtDevice"; `schema` (F2_REGISTRY_SCHEMA) says where the registry is. Columns
get the values the reference deployment's tools write (its DDL has them NOT NULL): '' for a text without a
value, 'gauge' / 'line' for the chart hints, 1 / 0 for wholenumber, 0 for a connector type the platform
does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import psycopg

from f2_platform.errors import RegistryError
from f2_platform.registry.sample import (
    CONTROLLERS,
    DEVICE_TYPES,
    TEMPLATES,
    WIRING,
    TemplateSpec,
    claiming_code,
)
from streaming.registry_schema import DEFAULT_SCHEMA, in_schema

S = '"VtDevice"'  # the schema as the statements name it; in_schema() puts the configured, validated name there


class Wired(Protocol):
    """A device on a controller's pin (the sample's WiringSpec, or a tool's own wiring)."""

    @property
    def mac(self) -> str: ...
    @property
    def connector(self) -> int: ...
    @property
    def position(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def template(self) -> str: ...


# A controller's row is written only when its name or template differ, a connector or pin only when missing or
# different: a second seed of the same fleet writes nothing (and bumps no registry version).
_CONTROLLERS_SQL = f"""
INSERT INTO {S}.devices (devicename, devicetemplateid, macaddress, claimingcode, serialnumber, uuid)
SELECT n, %s, m, c, 'SN-' || m, gen_random_uuid() FROM unnest(%s::text[], %s::text[], %s::text[]) AS t(n, m, c)
ON CONFLICT (macaddress) DO UPDATE SET devicename = EXCLUDED.devicename, devicetemplateid = EXCLUDED.devicetemplateid
WHERE (devices.devicename, devices.devicetemplateid) IS DISTINCT FROM (EXCLUDED.devicename, EXCLUDED.devicetemplateid)
"""
_CONTROLLER_IDS_SQL = f"SELECT macaddress, deviceid FROM {S}.devices WHERE macaddress = ANY(%s)"
_CONNECTORS_SQL = f"""
INSERT INTO {S}.connectors (controllerid, connectornumber, connectortypeid)
SELECT c, n, 0 FROM unnest(%s::int[], %s::int[]) AS x(c, n)
ON CONFLICT (controllerid, connectornumber) DO NOTHING
"""
_CONNECTOR_IDS_SQL = (
    f"SELECT controllerid, connectornumber, connectorid FROM {S}.connectors WHERE controllerid = ANY(%s)"
)
# The device already on each pin under the wanted name (k: 1-based index into the wiring).
_PINNED_SQL = f"""
SELECT w.k, d.deviceid
FROM unnest(%s::int[], %s::int[], %s::text[]) WITH ORDINALITY AS w(connectorid, position, name, k)
JOIN {S}.pins p ON p.connectorid = w.connectorid AND p.position = w.position
JOIN {S}.devices d ON d.deviceid = p.deviceid AND d.devicename = w.name
"""
_RETEMPLATE_SQL = f"""
UPDATE {S}.devices d SET devicetemplateid = u.t FROM unnest(%s::int[], %s::int[]) AS u(id, t)
WHERE d.deviceid = u.id AND d.devicetemplateid IS DISTINCT FROM u.t
"""
_DEVICES_SQL = f"""
INSERT INTO {S}.devices (devicename, devicetemplateid, claimingcode, serialnumber, uuid)
SELECT n, t, '', s, gen_random_uuid() FROM unnest(%s::text[], %s::int[], %s::text[]) AS x(n, t, s)
RETURNING serialnumber, deviceid
"""
_PINS_SQL = f"""
INSERT INTO {S}.pins (connectorid, position, deviceid) SELECT * FROM unnest(%s::int[], %s::int[], %s::int[])
ON CONFLICT (connectorid, position) DO UPDATE SET deviceid = EXCLUDED.deviceid
WHERE pins.deviceid IS DISTINCT FROM EXCLUDED.deviceid
"""


def _one(conn: psycopg.Connection, sql: str, params: Sequence[object]) -> int | None:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else int(row[0])


def upsert_device_types(conn: psycopg.Connection, schema: str = DEFAULT_SCHEMA) -> dict[str, int]:
    ids = {}
    for typename, description, issensor, iscontroller in DEVICE_TYPES:
        ids[typename] = _one(
            conn,
            in_schema(
                f"INSERT INTO {S}.devicetypes (typename, description, issensor, iscontroller) VALUES (%s,%s,%s,%s) "
                "ON CONFLICT (typename) DO UPDATE SET description = EXCLUDED.description, "
                "issensor = EXCLUDED.issensor, iscontroller = EXCLUDED.iscontroller RETURNING devicetypeid",
                schema,
            ),
            (typename, description, issensor, iscontroller),
        )
    return {k: v for k, v in ids.items() if v is not None}


def upsert_templates(
    conn: psycopg.Connection, templates: Iterable[TemplateSpec], types: dict[str, int], schema: str = DEFAULT_SCHEMA
) -> dict[str, int]:
    ids: dict[str, int] = {}
    for t in templates:
        template_id = _one(
            conn,
            in_schema(
                f"INSERT INTO {S}.devicetemplates (name, model, description, devicetypeid, frame_check, "
                "expected_interval_s) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET "
                "model = EXCLUDED.model, description = EXCLUDED.description, devicetypeid = EXCLUDED.devicetypeid, "
                "frame_check = EXCLUDED.frame_check, expected_interval_s = EXCLUDED.expected_interval_s "
                "RETURNING devicetemplateid",
                schema,
            ),
            (t.name, t.model, t.description, types[t.device_type], t.frame_check, t.expected_interval_s),
        )
        assert template_id is not None
        ids[t.name] = template_id
        for dp in t.datapoints:
            conn.execute(
                in_schema(
                    f'INSERT INTO {S}.datapoints (devicetemplateid, label, "offset", length, dataencoding, append, '
                    "prepend, decimals, wholenumber, realtimechart, historicalchart, min_value, max_value) "
                    "VALUES (%s,%s,%s,%s,%s,%s,'',%s,%s,%s,%s,%s,%s) ON CONFLICT (devicetemplateid, label) DO UPDATE "
                    'SET "offset" = EXCLUDED."offset", length = EXCLUDED.length, dataencoding = EXCLUDED.dataencoding, '
                    "append = EXCLUDED.append, decimals = EXCLUDED.decimals, wholenumber = EXCLUDED.wholenumber, "
                    "min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value",
                    schema,
                ),
                (
                    template_id,
                    dp.label,
                    dp.offset,
                    dp.length,
                    dp.encoding,
                    dp.unit or "",
                    dp.decimals,
                    1 if dp.decimals == 0 else 0,
                    "gauge" if dp.encoding != "Bool" else "",
                    "line",
                    dp.min_value,
                    dp.max_value,
                ),
            )
        labels = [dp.label for dp in t.datapoints]
        conn.execute(
            in_schema(f"DELETE FROM {S}.datapoints WHERE devicetemplateid = %s AND NOT (label = ANY(%s))", schema),
            (template_id, labels),
        )
    return ids


def seed_sample(dsn: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Make the registry contain docs/domain.md's sample registry (other rows are left alone)."""
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.transaction():
        seed_fleet(conn, CONTROLLERS, WIRING, schema=schema)


def seed_fleet(
    conn: psycopg.Connection,
    controllers: Iterable[tuple[str, str]],
    wiring: Iterable[Wired],
    templates: Iterable[TemplateSpec] = TEMPLATES,
    schema: str = DEFAULT_SCHEMA,
) -> dict[tuple[str, int, int], int]:
    """Make the registry hold `controllers` ((name, MAC)) with `wiring` and the `templates` they use (which
    include "F2 Controller"); returns (MAC, connector, position) -> device id.

    Idempotent and set-based (a few statements whatever the fleet's size: a generated fleet of thousands of
    controllers takes seconds): controllers are matched by MAC, a pin's device by its name, so a second run
    changes nothing and writes nothing; a pin wired to another device is rewired to a new one.
    """
    types = upsert_device_types(conn, schema)
    template_ids = upsert_templates(conn, templates, types, schema)

    def q(statement: str) -> str:
        return in_schema(statement, schema)

    if "F2 Controller" not in template_ids:
        raise RegistryError('seed_fleet: the templates must include "F2 Controller", the controllers\' template')
    named = dict((mac, name) for name, mac in controllers)  # the last name given for a MAC wins
    pins = {(w.mac, w.connector, w.position): w for w in wiring}  # the last device given for a pin wins
    unknown = sorted({w.template for w in pins.values()} - set(template_ids))
    if unknown:
        raise RegistryError(f"seed_fleet: template(s) {', '.join(unknown)} are not among the templates given")
    unwired = sorted({mac for mac, _, _ in pins} - set(named))
    if unwired:
        raise RegistryError(f"seed_fleet: wiring names controller(s) {', '.join(unwired[:5])} that are not listed")
    macs = list(named)
    conn.execute(
        q(_CONTROLLERS_SQL),
        (template_ids["F2 Controller"], [named[m] for m in macs], macs, [claiming_code(m) for m in macs]),
    )
    controller_ids = {str(m): int(i) for m, i in conn.execute(q(_CONTROLLER_IDS_SQL), (macs,)).fetchall()}
    wired = list(pins.values())
    pairs = sorted({(controller_ids[w.mac], w.connector) for w in wired})
    conn.execute(q(_CONNECTORS_SQL), ([c for c, _ in pairs], [n for _, n in pairs]))
    rows = conn.execute(q(_CONNECTOR_IDS_SQL), (sorted({c for c, _ in pairs}),)).fetchall()
    connector_ids = {(int(c), int(n)): int(i) for c, n, i in rows}
    at_pin = [connector_ids[(controller_ids[w.mac], w.connector)] for w in wired]
    rows = conn.execute(q(_PINNED_SQL), (at_pin, [w.position for w in wired], [w.device for w in wired])).fetchall()
    device_ids = {int(k) - 1: int(device_id) for k, device_id in rows}
    kept = sorted(device_ids)
    conn.execute(q(_RETEMPLATE_SQL), ([device_ids[k] for k in kept], [template_ids[wired[k].template] for k in kept]))
    new = [k for k in range(len(wired)) if k not in device_ids]
    serials = [f"SN-{wired[k].mac}-{wired[k].connector}-{wired[k].position}" for k in new]
    rows = conn.execute(
        q(_DEVICES_SQL), ([wired[k].device for k in new], [template_ids[wired[k].template] for k in new], serials)
    ).fetchall()
    by_serial = {str(serial): int(device_id) for serial, device_id in rows}
    for k, serial in zip(new, serials, strict=True):
        device_ids[k] = by_serial[serial]
    conn.execute(q(_PINS_SQL), (at_pin, [w.position for w in wired], [device_ids[k] for k in range(len(wired))]))
    return {(w.mac, w.connector, w.position): device_ids[k] for k, w in enumerate(wired)}
