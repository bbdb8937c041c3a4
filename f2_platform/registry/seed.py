"""Writes a registry (the sample, or a generated fleet) idempotently, keyed by natural names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

from f2_platform.registry.sample import (
    CONTROLLERS,
    DEVICE_TYPES,
    TEMPLATES,
    WIRING,
    TemplateSpec,
    WiringSpec,
    claiming_code,
)

S = '"VtDevice"'  # a constant schema name, never input: the f-strings below are not injectable


def _one(conn: psycopg.Connection, sql: str, params: Sequence[object]) -> int | None:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else int(row[0])


def upsert_device_types(conn: psycopg.Connection) -> dict[str, int]:
    ids = {}
    for typename, description, issensor, iscontroller in DEVICE_TYPES:
        ids[typename] = _one(
            conn,
            f"INSERT INTO {S}.devicetypes (typename, description, issensor, iscontroller) VALUES (%s,%s,%s,%s) "
            "ON CONFLICT (typename) DO UPDATE SET description = EXCLUDED.description, "
            "issensor = EXCLUDED.issensor, iscontroller = EXCLUDED.iscontroller RETURNING devicetypeid",
            (typename, description, issensor, iscontroller),
        )
    return {k: v for k, v in ids.items() if v is not None}


def upsert_templates(
    conn: psycopg.Connection, templates: Iterable[TemplateSpec], types: dict[str, int]
) -> dict[str, int]:
    ids: dict[str, int] = {}
    for t in templates:
        template_id = _one(
            conn,
            f"INSERT INTO {S}.devicetemplates (name, model, description, devicetypeid, frame_check, "
            "expected_interval_s) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET "
            "model = EXCLUDED.model, description = EXCLUDED.description, devicetypeid = EXCLUDED.devicetypeid, "
            "frame_check = EXCLUDED.frame_check, expected_interval_s = EXCLUDED.expected_interval_s "
            "RETURNING devicetemplateid",
            (t.name, t.model, t.description, types[t.device_type], t.frame_check, t.expected_interval_s),
        )
        assert template_id is not None
        ids[t.name] = template_id
        for dp in t.datapoints:
            conn.execute(
                f'INSERT INTO {S}.datapoints (devicetemplateid, label, "offset", length, dataencoding, append, '
                "decimals, wholenumber, realtimechart, historicalchart, min_value, max_value) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (devicetemplateid, label) DO UPDATE SET "
                '"offset" = EXCLUDED."offset", length = EXCLUDED.length, dataencoding = EXCLUDED.dataencoding, '
                "append = EXCLUDED.append, decimals = EXCLUDED.decimals, wholenumber = EXCLUDED.wholenumber, "
                "min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value",
                (
                    template_id,
                    dp.label,
                    dp.offset,
                    dp.length,
                    dp.encoding,
                    dp.unit or None,
                    dp.decimals,
                    dp.decimals == 0,
                    dp.encoding != "Bool",
                    True,
                    dp.min_value,
                    dp.max_value,
                ),
            )
        labels = [dp.label for dp in t.datapoints]
        conn.execute(
            f"DELETE FROM {S}.datapoints WHERE devicetemplateid = %s AND NOT (label = ANY(%s))",
            (template_id, labels),
        )
    return ids


def upsert_controller(conn: psycopg.Connection, name: str, mac: str, template_id: int) -> int:
    device_id = _one(
        conn,
        f"INSERT INTO {S}.devices (devicename, devicetemplateid, macaddress, claimingcode, serialnumber, uuid) "
        "VALUES (%s,%s,%s,%s,%s, gen_random_uuid()) ON CONFLICT (macaddress) DO UPDATE SET "
        "devicename = EXCLUDED.devicename, devicetemplateid = EXCLUDED.devicetemplateid "
        "RETURNING deviceid",
        (name, template_id, mac, claiming_code(mac), f"SN-{mac}"),
    )
    assert device_id is not None
    return device_id


def wire(conn: psycopg.Connection, w: WiringSpec, controller_id: int, template_id: int) -> int:
    """Put device `w.device` on (controller, connector, position), creating what is missing."""
    connector_id = _one(
        conn,
        f"INSERT INTO {S}.connectors (controllerid, connectornumber) VALUES (%s,%s) "
        "ON CONFLICT (controllerid, connectornumber) DO UPDATE SET connectornumber = EXCLUDED.connectornumber "
        "RETURNING connectorid",
        (controller_id, w.connector),
    )
    device_id = _one(
        conn,
        f"SELECT p.deviceid FROM {S}.pins p JOIN {S}.devices d ON d.deviceid = p.deviceid "
        "WHERE p.connectorid = %s AND p.position = %s AND d.devicename = %s",
        (connector_id, w.position, w.device),
    )
    if device_id is None:
        device_id = _one(
            conn,
            f"INSERT INTO {S}.devices (devicename, devicetemplateid, serialnumber, uuid) "
            "VALUES (%s,%s,%s, gen_random_uuid()) RETURNING deviceid",
            (w.device, template_id, f"SN-{w.mac}-{w.connector}-{w.position}"),
        )
    else:
        conn.execute(f"UPDATE {S}.devices SET devicetemplateid = %s WHERE deviceid = %s", (template_id, device_id))
    conn.execute(
        f"INSERT INTO {S}.pins (connectorid, position, deviceid) VALUES (%s,%s,%s) "
        "ON CONFLICT (connectorid, position) DO UPDATE SET deviceid = EXCLUDED.deviceid",
        (connector_id, w.position, device_id),
    )
    assert device_id is not None
    return device_id


def seed_sample(dsn: str) -> None:
    """Make the registry contain docs/domain.md's sample registry (other rows are left alone)."""
    with psycopg.connect(dsn, connect_timeout=10) as conn, conn.transaction():
        seed_fleet(conn, CONTROLLERS, WIRING)


def seed_fleet(
    conn: psycopg.Connection, controllers: Iterable[tuple[str, str]], wiring: Iterable[WiringSpec]
) -> dict[tuple[str, int, int], int]:
    types = upsert_device_types(conn)
    templates = upsert_templates(conn, TEMPLATES, types)
    controller_ids = {mac: upsert_controller(conn, name, mac, templates["F2 Controller"]) for name, mac in controllers}
    return {
        (w.mac, w.connector, w.position): wire(conn, w, controller_ids[w.mac], templates[w.template]) for w in wiring
    }
