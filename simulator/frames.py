"""Frames as an F2 sensor sends them: a Modbus RTU read response with its CRC, in hex text.

The simulator is the platform's oracle, so this encoder shares no code with the platform's decoder
(streaming/decoding): the CRC, the encodings and the layout rules are written again here from
docs/domain.md ("Frames and decoding"). A mistake in either side then shows as a difference in the
reconciliation instead of being made on both sides.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Final, Protocol

# Big-endian struct codes of the frame encodings (Bool datapoints come from status fields, not frames).
ENCODINGS: Final[dict[str, str]] = {
    "Int8": ">b",
    "Uint8": ">B",
    "Int16": ">h",
    "Uint16": ">H",
    "Int32": ">i",
    "Uint32": ">I",
    "Float32": ">f",
}
_HEADER_LEN: Final = 3  # slave address, function, byte count
_READ_FUNCTION: Final = 0x03


class PointLike(Protocol):
    """Where one datapoint sits in a frame (the simulator's catalog.Datapoint, or a test's own)."""

    @property
    def label(self) -> str: ...
    @property
    def encoding(self) -> str: ...
    @property
    def offset(self) -> int: ...
    @property
    def decimals(self) -> int: ...


def crc16_modbus(data: bytes | bytearray) -> int:
    """CRC-16/MODBUS bit by bit: reflected polynomial 0xA001, initial value 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def encode_frame(values: Mapping[str, float], datapoints: Iterable[PointLike], slave: int = 1) -> bytes:
    """A Modbus read response carrying `values` (by label) for the frame datapoints (Bool ones are status
    fields and skipped), CRC appended low byte first.

    The raw integer is value * 10^decimals rounded, as the sensor sends it; ValueError for a missing label or
    a value the encoding cannot hold.
    """
    points = [p for p in datapoints if p.encoding != "Bool"]
    missing = [p.label for p in points if p.label not in values]
    if missing:
        raise ValueError(f"no value for datapoint(s) {', '.join(map(repr, missing))}")
    if not 0 <= slave <= 0xFF:
        raise ValueError(f"slave address {slave} is not 0..255")
    end = _HEADER_LEN
    for p in points:
        if p.encoding not in ENCODINGS:
            raise ValueError(f"datapoint {p.label!r} has encoding {p.encoding!r}, not a frame encoding")
        if p.offset < _HEADER_LEN:
            raise ValueError(f"datapoint {p.label!r} has offset {p.offset}, inside the Modbus header")
        end = max(end, p.offset + struct.calcsize(ENCODINGS[p.encoding]))
    count = end - _HEADER_LEN
    if count > 0xFF:
        raise ValueError(f"datapoints need {count} data bytes; a Modbus byte count holds at most 255")
    frame = bytearray(end)
    frame[0], frame[1], frame[2] = slave, _READ_FUNCTION, count
    for p in points:
        value = values[p.label]
        scaled = value * 10**p.decimals if p.decimals >= 0 else value / 10**-p.decimals
        try:
            raw: int | float = scaled if p.encoding == "Float32" else round(scaled)
            struct.pack_into(ENCODINGS[p.encoding], frame, p.offset, raw)
        except (struct.error, ValueError, OverflowError) as exc:
            raise ValueError(f"value {value!r} of {p.label!r} does not fit {p.encoding}: {exc}") from None
    crc = crc16_modbus(frame)
    return bytes(frame) + bytes((crc & 0xFF, crc >> 8))


def hex_text(frame: bytes) -> str:
    """'01 03 06 ...': upper-case byte pairs separated by single spaces, as controllers publish `data`."""
    return " ".join(f"{b:02X}" for b in frame)
