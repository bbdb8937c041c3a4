"""The only things the simulator reads from the registry: the ids it assigned. A device's id by its name on
its controller, a datapoint's id by its template's name and its label, a controller's id by its MAC;
everything else the simulator knows from its own catalog (simulator/catalog.py), so the platform's topology
code is never on both sides of the reconciliation."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from simulator.catalog import Wiring
from streaming.registry_schema import DEFAULT_SCHEMA, in_schema

# Devices on any pin of the controllers: no position is read, so a device the registry wired to the wrong
# pin keeps its id here while the platform attributes the wrong pin's frames to it.
_DEVICES_SQL = """
SELECT ctl.macaddress, d.devicename, d.deviceid
FROM "VtDevice".devices ctl
JOIN "VtDevice".connectors c ON c.controllerid = ctl.deviceid
JOIN "VtDevice".pins p ON p.connectorid = c.connectorid
JOIN "VtDevice".devices d ON d.deviceid = p.deviceid
WHERE ctl.macaddress = ANY(%s)
"""
_DATAPOINTS_SQL = """
SELECT t.name, dp.label, dp.datapointid
FROM "VtDevice".datapoints dp
JOIN "VtDevice".devicetemplates t ON t.devicetemplateid = dp.devicetemplateid
WHERE t.name = ANY(%s)
"""


_CONTROLLERS_SQL = 'SELECT macaddress, deviceid FROM "VtDevice".devices WHERE macaddress = ANY(%s)'


class NotRegistered(LookupError):
    """A device or datapoint of the simulated fleet is missing from the registry."""


def device_ids(
    conn: psycopg.Connection, wiring: Iterable[Wiring], schema: str = DEFAULT_SCHEMA
) -> dict[tuple[str, str], int]:
    """(controller MAC, device name) -> device id for every wired device; NotRegistered names what is missing
    or ambiguous."""
    wanted = {(w.mac, w.device) for w in wiring}
    found: dict[tuple[str, str], list[int]] = {}
    macs = sorted({mac for mac, _ in wanted})
    for mac, name, device_id in conn.execute(in_schema(_DEVICES_SQL, schema), (macs,)).fetchall():
        found.setdefault((str(mac), str(name)), []).append(int(device_id))
    missing = sorted(wanted - set(found))
    if missing:
        shown = ", ".join(f"{name!r} on {mac}" for mac, name in missing[:5])
        raise NotRegistered(
            f"{len(missing)} simulated device(s) are not wired in the registry: {shown} "
            "(the sample fleet: run f2 db seed-sample; --controllers N registers its own)"
        )
    twice = sorted(k for k in wanted if len(found[k]) > 1)
    if twice:
        mac, name = twice[0]
        raise NotRegistered(f"controller {mac} has {len(found[twice[0]])} devices named {name!r}: names must be unique")
    return {k: found[k][0] for k in wanted}


def datapoint_ids(
    conn: psycopg.Connection, labels: dict[str, list[str]], schema: str = DEFAULT_SCHEMA
) -> dict[tuple[str, str], int]:
    """(template name, label) -> datapoint id for `labels` (template name -> its labels)."""
    rows = conn.execute(in_schema(_DATAPOINTS_SQL, schema), (sorted(labels),)).fetchall()
    found = {(str(t), str(label)): int(i) for t, label, i in rows}
    missing = [(t, label) for t, ls in labels.items() for label in ls if (t, label) not in found]
    if missing:
        shown = ", ".join(f"{label!r} of {t}" for t, label in missing[:5])
        raise NotRegistered(f"datapoint(s) {shown} are not in the registry (run f2 db seed-sample)")
    return found


def controller_ids(conn: psycopg.Connection, macs: list[str], schema: str = DEFAULT_SCHEMA) -> dict[str, int]:
    """Controller MAC -> its device id, for the controllers the registry knows (events carry it)."""
    rows = conn.execute(in_schema(_CONTROLLERS_SQL, schema), (macs,)).fetchall()
    return {str(mac): int(i) for mac, i in rows}
