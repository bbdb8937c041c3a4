"""docs/domain.md's sample registry as data: the demo, the tests and `f2 db seed-sample` load it (the simulator keeps
its own copy, simulator/catalog.py, so that it stays an independent oracle)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatapointSpec:
    label: str
    encoding: str
    offset: int
    length: int
    decimals: int
    unit: str
    min_value: float | None
    max_value: float | None


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    model: str
    description: str
    device_type: str
    frame_check: str
    expected_interval_s: int | None
    datapoints: tuple[DatapointSpec, ...]


@dataclass(frozen=True)
class WiringSpec:
    mac: str
    connector: int
    position: int
    device: str
    template: str


DEVICE_TYPES = (
    # typename, description, issensor, iscontroller
    ("Controller", "F2 Smart Controller", False, True),
    ("Sensor", "RS-485 sensor", True, False),
    ("Status device", "Access-control or alarm device reporting status on change", True, False),
)

_CRC = "modbus-crc16"

TEMPLATES: tuple[TemplateSpec, ...] = (
    TemplateSpec(
        "ENV-S1",
        "ENV-S1",
        "environmental",
        "Sensor",
        _CRC,
        30,
        (
            DatapointSpec("Temperature", "Int16", 3, 2, 2, " °C", -40, 85),
            DatapointSpec("Humidity", "Uint16", 5, 2, 2, " %", 0, 100),
            DatapointSpec("CO2", "Uint16", 7, 2, 0, " ppm", 300, 10000),
        ),
    ),
    TemplateSpec(
        "PM-100",
        "PM-100",
        "power monitor",
        "Sensor",
        _CRC,
        30,
        (
            DatapointSpec("Voltage", "Uint16", 3, 2, 1, " V", 0, 500),
            DatapointSpec("Current", "Int16", 5, 2, 3, " A", -100, 100),
            DatapointSpec("Power", "Int32", 7, 4, 1, " W", -50000, 50000),
            DatapointSpec("Energy", "Uint32", 11, 4, 3, " kWh", 0, None),
        ),
    ),
    TemplateSpec(
        "PS-1",
        "PS-1",
        "pressure",
        "Sensor",
        _CRC,
        30,
        (
            DatapointSpec("Pressure", "Float32", 3, 4, 0, " hPa", 300, 1100),
            DatapointSpec("Probe Temperature", "Int8", 7, 1, 0, " °C", -40, 125),
            DatapointSpec("Battery", "Uint8", 8, 1, 0, " %", 0, 100),
        ),
    ),
    TemplateSpec(
        "DS-2",
        "DS-2",
        "door sensor pair",
        "Status device",
        "none",
        None,
        (
            DatapointSpec("door-sensor-1", "Bool", 0, 0, 0, "", None, None),
            DatapointSpec("door-sensor-2", "Bool", 0, 0, 0, "", None, None),
        ),
    ),
    TemplateSpec(
        "MS-1",
        "MS-1",
        "motion sensor",
        "Status device",
        "none",
        None,
        (DatapointSpec("status", "Bool", 0, 0, 0, "", None, None),),
    ),
    # Access and alarm components (docs/domain.md, "Access and alarm components"). Strikes and sirens report
    # `status`, exit buttons `exit-button-1`/`-2`: Bool datapoints named like the fields, so their events carry
    # the device's id and the fields give readings as for doors. A reader has no datapoints: it gives no
    # readings, and a reader's events carry the id of a device without frame datapoints at its pin.
    TemplateSpec(
        "SK-1",
        "SK-1",
        "electric strike",
        "Status device",
        "none",
        None,
        (DatapointSpec("status", "Bool", 0, 0, 0, "", None, None),),
    ),
    TemplateSpec(
        "SR-1",
        "SR-1",
        "siren",
        "Status device",
        "none",
        None,
        (DatapointSpec("status", "Bool", 0, 0, 0, "", None, None),),
    ),
    TemplateSpec(
        "EB-2",
        "EB-2",
        "exit button pair",
        "Status device",
        "none",
        None,
        (
            DatapointSpec("exit-button-1", "Bool", 0, 0, 0, "", None, None),
            DatapointSpec("exit-button-2", "Bool", 0, 0, 0, "", None, None),
        ),
    ),
    TemplateSpec("RD-1", "RD-1", "QR/NFC reader", "Status device", "none", None, ()),
    TemplateSpec("F2 Controller", "F2", "F2 Smart Controller", "Controller", "none", None, ()),
)

CONTROLLERS: tuple[tuple[str, str], ...] = tuple((f"F2 Controller {n}", f"aabbccddee{n:02d}") for n in range(1, 5))

WIRING: tuple[WiringSpec, ...] = (
    WiringSpec("aabbccddee01", 1, 1, "Living Room Env", "ENV-S1"),
    WiringSpec("aabbccddee01", 1, 2, "Hallway Env", "ENV-S1"),
    WiringSpec("aabbccddee01", 2, 1, "Main Door", "DS-2"),
    WiringSpec("aabbccddee02", 2, 2, "Kitchen Power", "PM-100"),
    WiringSpec("aabbccddee03", 4, 3, "Bedroom Env", "ENV-S1"),
    WiringSpec("aabbccddee04", 1, 1, "Lobby Motion", "MS-1"),
    WiringSpec("aabbccddee04", 3, 1, "Boiler Pressure", "PS-1"),
    # Access and alarm: a reader at the main door; the back door (strike, reader, door sensors, exit buttons)
    # on controller 2; a siren and a second motion sensor on controller 4. Door sensors and exit buttons sit at
    # position 1 and a numbered component at its number, so each has a pin of its own.
    WiringSpec("aabbccddee01", 2, 2, "Main Door Reader", "RD-1"),
    WiringSpec("aabbccddee02", 1, 1, "Back Door Strike", "SK-1"),
    WiringSpec("aabbccddee02", 1, 2, "Back Door Reader", "RD-1"),
    WiringSpec("aabbccddee02", 3, 1, "Back Door", "DS-2"),
    WiringSpec("aabbccddee02", 4, 1, "Back Door Exit", "EB-2"),
    WiringSpec("aabbccddee04", 1, 2, "Lobby Siren", "SR-1"),
    WiringSpec("aabbccddee04", 2, 1, "Boiler Room Motion", "MS-1"),
)


def claiming_code(mac: str) -> str:
    """The sample fleet's claiming codes are fixed so the demo can enroll its devices."""
    return f"claim-{mac}"
