"""The sample registry of docs/domain.md as value objects, for tests that need no database.

Datapoint ids are this module's own choice (template number * 100 + position in the template); device
ids follow the order of docs/domain.md's table.
"""

from __future__ import annotations

from streaming.decoding.topology import FRAME_CHECK_MODBUS_CRC, FRAME_CHECK_NONE, Datapoint, WiredDevice

ENV_S1: tuple[Datapoint, ...] = (
    Datapoint(101, "Temperature", "Int16", 3, 2, 2, "°C", -40.0, 85.0),
    Datapoint(102, "Humidity", "Uint16", 5, 2, 2, "%", 0.0, 100.0),
    Datapoint(103, "CO2", "Uint16", 7, 2, 0, "ppm", 300.0, 10000.0),
)
PM_100: tuple[Datapoint, ...] = (
    Datapoint(201, "Voltage", "Uint16", 3, 2, 1, "V", 0.0, 500.0),
    Datapoint(202, "Current", "Int16", 5, 2, 3, "A", -100.0, 100.0),
    Datapoint(203, "Power", "Int32", 7, 4, 1, "W", -50000.0, 50000.0),
    Datapoint(204, "Energy", "Uint32", 11, 4, 3, "kWh", 0.0, None),
)
PS_1: tuple[Datapoint, ...] = (
    Datapoint(301, "Pressure", "Float32", 3, 4, 0, "hPa", 300.0, 1100.0),
    Datapoint(302, "Probe Temperature", "Int8", 7, 1, 0, "°C", -40.0, 125.0),
    Datapoint(303, "Battery", "Uint8", 8, 1, 0, "%", 0.0, 100.0),
)
# Status datapoints have no place in a frame: offset and length 0.
DS_2: tuple[Datapoint, ...] = (
    Datapoint(401, "door-sensor-1", "Bool", 0, 0, 0, ""),
    Datapoint(402, "door-sensor-2", "Bool", 0, 0, 0, ""),
)
MS_1: tuple[Datapoint, ...] = (Datapoint(501, "status", "Bool", 0, 0, 0, ""),)
SK_1: tuple[Datapoint, ...] = (Datapoint(601, "status", "Bool", 0, 0, 0, ""),)
SR_1: tuple[Datapoint, ...] = (Datapoint(701, "status", "Bool", 0, 0, 0, ""),)
EB_2: tuple[Datapoint, ...] = (
    Datapoint(801, "exit-button-1", "Bool", 0, 0, 0, ""),
    Datapoint(802, "exit-button-2", "Bool", 0, 0, 0, ""),
)
RD_1: tuple[Datapoint, ...] = ()  # a reader gives no readings

# template name -> (template id, frame check, datapoints)
TEMPLATES: dict[str, tuple[int, str, tuple[Datapoint, ...]]] = {
    "ENV-S1": (1, FRAME_CHECK_MODBUS_CRC, ENV_S1),
    "PM-100": (2, FRAME_CHECK_MODBUS_CRC, PM_100),
    "PS-1": (3, FRAME_CHECK_MODBUS_CRC, PS_1),
    "DS-2": (4, FRAME_CHECK_NONE, DS_2),
    "MS-1": (5, FRAME_CHECK_NONE, MS_1),
    "SK-1": (6, FRAME_CHECK_NONE, SK_1),
    "SR-1": (7, FRAME_CHECK_NONE, SR_1),
    "EB-2": (8, FRAME_CHECK_NONE, EB_2),
    "RD-1": (9, FRAME_CHECK_NONE, RD_1),
}


def wired_device(device_id: int, name: str, template: str) -> WiredDevice:
    template_id, frame_check, datapoints = TEMPLATES[template]
    return WiredDevice(device_id, name, template_id, template, frame_check, datapoints)


# (controller MAC, connector number, position) -> wired device, as docs/domain.md's "Sample registry".
TOPOLOGY: dict[tuple[str, int, int], WiredDevice] = {
    ("aabbccddee01", 1, 1): wired_device(11, "Living Room Env", "ENV-S1"),
    ("aabbccddee01", 1, 2): wired_device(12, "Hallway Env", "ENV-S1"),
    ("aabbccddee01", 2, 1): wired_device(13, "Main Door", "DS-2"),
    ("aabbccddee02", 2, 2): wired_device(14, "Kitchen Power", "PM-100"),
    ("aabbccddee03", 4, 3): wired_device(15, "Bedroom Env", "ENV-S1"),
    ("aabbccddee04", 1, 1): wired_device(16, "Lobby Motion", "MS-1"),
    ("aabbccddee04", 3, 1): wired_device(17, "Boiler Pressure", "PS-1"),
    ("aabbccddee01", 2, 2): wired_device(18, "Main Door Reader", "RD-1"),
    ("aabbccddee02", 1, 1): wired_device(19, "Back Door Strike", "SK-1"),
    ("aabbccddee02", 1, 2): wired_device(20, "Back Door Reader", "RD-1"),
    ("aabbccddee02", 3, 1): wired_device(21, "Back Door", "DS-2"),
    ("aabbccddee02", 4, 1): wired_device(22, "Back Door Exit", "EB-2"),
    ("aabbccddee04", 1, 2): wired_device(23, "Lobby Siren", "SR-1"),
    ("aabbccddee04", 2, 1): wired_device(24, "Boiler Room Motion", "MS-1"),
}
CONTROLLER_MACS: tuple[str, ...] = ("aabbccddee01", "aabbccddee02", "aabbccddee03", "aabbccddee04")
DEVICES_BY_NAME: dict[str, WiredDevice] = {device.device_name: device for device in TOPOLOGY.values()}


def label_of(device: WiredDevice, datapoint_id: int) -> str:
    return next(dp.label for dp in device.datapoints if dp.datapoint_id == datapoint_id)
