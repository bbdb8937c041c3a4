"""Acceptance of the sample registry (`f2 db seed-sample`) and the registry's integrity constraints."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streaming.settings import ConnectionSettings

pytestmark = pytest.mark.integration

F2 = str(Path(sys.executable).parent / "f2")

# docs/domain.md, "Sample registry", written out by hand.
CONTROLLERS = [
    ("F2 Controller 1", "aabbccddee01"),
    ("F2 Controller 2", "aabbccddee02"),
    ("F2 Controller 3", "aabbccddee03"),
    ("F2 Controller 4", "aabbccddee04"),
]
MACS = [mac for _, mac in CONTROLLERS]
# (controller MAC, connector number (J1 = 1), position, device, template)
WIRING = [
    ("aabbccddee01", 1, 1, "Living Room Env", "ENV-S1"),
    ("aabbccddee01", 1, 2, "Hallway Env", "ENV-S1"),
    ("aabbccddee01", 2, 1, "Main Door", "DS-2"),
    ("aabbccddee02", 2, 2, "Kitchen Power", "PM-100"),
    ("aabbccddee03", 4, 3, "Bedroom Env", "ENV-S1"),
    ("aabbccddee04", 1, 1, "Lobby Motion", "MS-1"),
    ("aabbccddee04", 3, 1, "Boiler Pressure", "PS-1"),
    ("aabbccddee01", 2, 2, "Main Door Reader", "RD-1"),
    ("aabbccddee02", 1, 1, "Back Door Strike", "SK-1"),
    ("aabbccddee02", 1, 2, "Back Door Reader", "RD-1"),
    ("aabbccddee02", 3, 1, "Back Door", "DS-2"),
    ("aabbccddee02", 4, 1, "Back Door Exit", "EB-2"),
    ("aabbccddee04", 1, 2, "Lobby Siren", "SR-1"),
    ("aabbccddee04", 2, 1, "Boiler Room Motion", "MS-1"),
]
DEVICE_NAMES = [w[3] for w in WIRING]
# template -> (Modbus data byte count or None, sensor with CRC and a 30 s interval?)
TEMPLATES = {
    "ENV-S1": (6, True),
    "PM-100": (12, True),
    "PS-1": (6, True),
    "DS-2": (None, False),
    "MS-1": (None, False),
    "SK-1": (None, False),
    "SR-1": (None, False),
    "EB-2": (None, False),
    "RD-1": (None, False),
    "F2 Controller": (None, False),
}
# template -> [(label, encoding, offset, length, decimals, unit, min, max)]; length follows from the encoding.
# Status datapoints (Bool) have no place in a frame: offset, length and decimals 0, no unit, no range.
DATAPOINTS = {
    "ENV-S1": [
        ("Temperature", "Int16", 3, 2, 2, "°C", -40, 85),
        ("Humidity", "Uint16", 5, 2, 2, "%", 0, 100),
        ("CO2", "Uint16", 7, 2, 0, "ppm", 300, 10000),
    ],
    "PM-100": [
        ("Voltage", "Uint16", 3, 2, 1, "V", 0, 500),
        ("Current", "Int16", 5, 2, 3, "A", -100, 100),
        ("Power", "Int32", 7, 4, 1, "W", -50000, 50000),
        ("Energy", "Uint32", 11, 4, 3, "kWh", 0, None),
    ],
    "PS-1": [
        ("Pressure", "Float32", 3, 4, 0, "hPa", 300, 1100),
        ("Probe Temperature", "Int8", 7, 1, 0, "°C", -40, 125),
        ("Battery", "Uint8", 8, 1, 0, "%", 0, 100),
    ],
    "DS-2": [
        ("door-sensor-1", "Bool", 0, 0, 0, "", None, None),
        ("door-sensor-2", "Bool", 0, 0, 0, "", None, None),
    ],
    "MS-1": [("status", "Bool", 0, 0, 0, "", None, None)],
    "SK-1": [("status", "Bool", 0, 0, 0, "", None, None)],
    "SR-1": [("status", "Bool", 0, 0, 0, "", None, None)],
    "EB-2": [
        ("exit-button-1", "Bool", 0, 0, 0, "", None, None),
        ("exit-button-2", "Bool", 0, 0, 0, "", None, None),
    ],
    "RD-1": [],
    "F2 Controller": [],
}
REGISTRY_TABLES = (
    "devicetypes",
    "devicetemplates",
    "devices",
    "connectors",
    "pins",
    "datapointicons",
    "datapoints",
)


def counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        return {
            table: int(conn.execute(f'SELECT count(*) FROM "VtDevice".{table}').fetchone()[0])  # noqa: S608
            for table in REGISTRY_TABLES
        }


@pytest.fixture(scope="module")
def seeded(migrated: ConnectionSettings, stack_env: dict[str, str]) -> str:
    """`f2 db seed-sample` run twice over the (already seeded) session registry; returns the registry DSN."""
    dsn = migrated.registry_dsn
    env = {**stack_env, "F2_REGISTRY_DSN": dsn}
    before = counts(dsn)
    for _ in range(2):
        result = subprocess.run(
            [F2, "db", "seed-sample"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "sample registry loaded" in result.stdout
        # Re-seeding adds nothing: same number of rows in every table.
        assert counts(dsn) == before
    return dsn


@pytest.fixture()
def registry(seeded: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded, connect_timeout=10) as conn:
        yield conn
        conn.rollback()


def test_controllers(registry: psycopg.Connection) -> None:
    rows = registry.execute(
        'SELECT d.devicename, d.macaddress, t.name FROM "VtDevice".devices d '
        'JOIN "VtDevice".devicetemplates t ON t.devicetemplateid = d.devicetemplateid '
        "WHERE d.macaddress = ANY(%s) ORDER BY d.macaddress",
        (MACS,),
    ).fetchall()
    assert rows == [(name, mac, "F2 Controller") for name, mac in CONTROLLERS]


def test_wiring_is_the_sample(registry: psycopg.Connection) -> None:
    rows = registry.execute(
        "SELECT ctrl.macaddress, c.connectornumber, p.position, d.devicename, t.name "
        'FROM "VtDevice".pins p '
        'JOIN "VtDevice".connectors c ON c.connectorid = p.connectorid '
        'JOIN "VtDevice".devices ctrl ON ctrl.deviceid = c.controllerid '
        'JOIN "VtDevice".devices d ON d.deviceid = p.deviceid '
        'JOIN "VtDevice".devicetemplates t ON t.devicetemplateid = d.devicetemplateid '
        "WHERE ctrl.macaddress = ANY(%s) ORDER BY 1, 2, 3",
        (MACS,),
    ).fetchall()
    assert rows == sorted(WIRING)


def test_wired_devices_exist_once_without_mac(registry: psycopg.Connection) -> None:
    rows = registry.execute(
        'SELECT devicename, count(*), count(macaddress) FROM "VtDevice".devices '
        "WHERE devicename = ANY(%s) GROUP BY devicename ORDER BY devicename",
        (DEVICE_NAMES,),
    ).fetchall()
    assert rows == [(name, 1, 0) for name in sorted(DEVICE_NAMES)]


def test_templates(registry: psycopg.Connection) -> None:
    rows = registry.execute(
        "SELECT name, count(*) OVER (PARTITION BY name), frame_check, expected_interval_s "
        'FROM "VtDevice".devicetemplates WHERE name = ANY(%s) ORDER BY name',
        (list(TEMPLATES),),
    ).fetchall()
    expected = sorted(
        (name, 1, "modbus-crc16" if sensor else "none", 30 if sensor else None)
        for name, (_, sensor) in TEMPLATES.items()
    )
    assert rows == expected


@pytest.mark.parametrize("template", list(DATAPOINTS))
def test_template_datapoints(registry: psycopg.Connection, template: str) -> None:
    rows = registry.execute(
        'SELECT dp.label, dp.dataencoding, dp."offset", dp.length, dp.decimals, dp.append, dp.min_value, '
        'dp.max_value FROM "VtDevice".datapoints dp '
        'JOIN "VtDevice".devicetemplates t ON t.devicetemplateid = dp.devicetemplateid '
        "WHERE t.name = %s ORDER BY dp.label",
        (template,),
    ).fetchall()
    actual = [
        (label, enc, off, length, dec, (append or "").strip(), lo, hi)
        for label, enc, off, length, dec, append, lo, hi in rows
    ]
    assert actual == sorted(DATAPOINTS[template])
    for label, *_, append, _lo, _hi in rows:
        unit = next(dp[5] for dp in DATAPOINTS[template] if dp[0] == label)
        # docs/domain.md: `append` holds the unit suffix, for example " °C".
        assert (append or "") == (f" {unit}" if unit else ""), (label, append)
    byte_count = TEMPLATES[template][0]
    if byte_count is not None:
        # The datapoints lie within the frame's data bytes (after address, function and byte count).
        assert max(off + length for _, _, off, length, *_ in rows) == 3 + byte_count


# A device (name, MAC) with the reference's NOT NULL columns filled (docs/domain.md §7).
INSERT_DEVICE = (
    'INSERT INTO "VtDevice".devices (devicename, macaddress, devicetemplateid, claimingcode) '
    "SELECT %s, %s, devicetemplateid, '' FROM \"VtDevice\".devicetemplates WHERE name = 'F2 Controller' "
    "RETURNING deviceid"
)


def test_duplicate_mac_is_rejected(registry: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        registry.execute(
            INSERT_DEVICE,
            ("Impostor Controller", "aabbccddee01"),
        )
    registry.rollback()
    assert registry.execute(
        "SELECT count(*) FROM \"VtDevice\".devices WHERE macaddress = 'aabbccddee01'"
    ).fetchone() == (1,)


def test_occupied_pin_is_rejected(registry: psycopg.Connection) -> None:
    row = registry.execute(
        'SELECT c.connectorid FROM "VtDevice".connectors c JOIN "VtDevice".devices ctrl '
        "ON ctrl.deviceid = c.controllerid WHERE ctrl.macaddress = 'aabbccddee01' AND c.connectornumber = 1"
    ).fetchone()
    assert row is not None
    connector_id = row[0]
    new_device = registry.execute(
        INSERT_DEVICE,
        ("Second Sensor", None),
    ).fetchone()
    assert new_device is not None
    with pytest.raises(psycopg.errors.UniqueViolation):
        registry.execute(
            'INSERT INTO "VtDevice".pins (connectorid, position, deviceid) VALUES (%s, %s, %s)',
            (connector_id, 1, new_device[0]),
        )
    registry.rollback()
    wired = registry.execute(
        'SELECT d.devicename FROM "VtDevice".pins p JOIN "VtDevice".devices d ON d.deviceid = p.deviceid '
        "WHERE p.connectorid = %s AND p.position = 1",
        (connector_id,),
    ).fetchall()
    assert wired == [("Living Room Env",)]
    assert registry.execute(
        "SELECT count(*) FROM \"VtDevice\".devices WHERE devicename = 'Second Sensor'"
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    "mac", ["AA:BB:CC:DD:EE:05", "aa:bb:cc:dd:ee:05", "AABBCCDDEE05", "aabbccddee5", "f2-aabbccddee05"]
)
def test_invalid_mac_is_rejected(registry: psycopg.Connection, mac: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        registry.execute(
            INSERT_DEVICE,
            ("Bad MAC", mac),
        )
    registry.rollback()
    assert registry.execute("SELECT count(*) FROM \"VtDevice\".devices WHERE devicename = 'Bad MAC'").fetchone() == (0,)
