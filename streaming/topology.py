"""What the registry says about one wired device: the value objects the decoder works on.

Pure data, no I/O. The registry layer builds them; the cache layer serialises them; the decoder reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

ENCODINGS = ("Int8", "Uint8", "Int16", "Uint16", "Int32", "Uint32", "Float32", "Bool")

# Frame checks a template can declare (column devicetemplates.frame_check).
FRAME_CHECK_MODBUS_CRC = "modbus-crc16"
FRAME_CHECK_NONE = "none"


@dataclass(frozen=True, slots=True)
class Datapoint:
    datapoint_id: int
    label: str
    encoding: str
    offset: int  # bytes from the start of the frame
    length: int  # bytes
    decimals: int
    unit: str
    min_value: float | None = None
    max_value: float | None = None


@dataclass(frozen=True, slots=True)
class WiredDevice:
    """The device wired at one (controller MAC, connector number, pin position), with its template."""

    device_id: int
    device_name: str
    template_id: int
    template_name: str
    frame_check: str
    datapoints: tuple[Datapoint, ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded value: what the sink stores as a row of decoded_data."""

    timestamp_us: int  # microseconds since the Unix epoch, UTC
    device_id: int
    datapoint_id: int
    value: float
