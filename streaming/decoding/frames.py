"""Decoding of RS-485 frames and status fields into readings (docs/domain.md, "Frames and decoding").

Pure: bytes and a registry record in, readings or a DecodeError out. It runs for every record at
tens of thousands of frames per second, so everything that depends only on the template (struct
formats, scales, the minimal frame length, registry mistakes) is computed once per device in a
`FrameLayout`, and the per-frame work is a length check, a CRC and one `struct.unpack_from`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from streaming.decoding.topology import FRAME_CHECK_MODBUS_CRC, Datapoint, Reading, WiredDevice
from streaming.errors import DecodeError

# struct codes (big-endian) and sizes of the frame encodings; Bool comes from status fields, not frames.
_CODES: Final[dict[str, str]] = {
    "Int8": "b",
    "Uint8": "B",
    "Int16": "h",
    "Uint16": "H",
    "Int32": "i",
    "Uint32": "I",
    "Float32": "f",
}
_SIZES: Final[dict[str, int]] = {name: struct.calcsize(">" + code) for name, code in _CODES.items()}
BOOL: Final[str] = "Bool"

# Modbus RTU read response: address, function, byte count, data, CRC low, CRC high.
_HEADER_LEN: Final[int] = 3
_CRC_LEN: Final[int] = 2
_MIN_CRC_FRAME: Final[int] = _HEADER_LEN + _CRC_LEN
_READ_FUNCTION: Final[int] = 0x03
_EXCEPTION_BIT: Final[int] = 0x80


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final[tuple[int, ...]] = _crc_table()
_new = tuple.__new__

# Registry records are rebuilt on cache refresh; both maps are bounded by clearing, which only costs
# one rebuild per device.
_MAX_CACHED_LAYOUTS: Final[int] = 1 << 16
_LAYOUT_BY_ID: dict[int, tuple[WiredDevice, FrameLayout]] = {}
_LAYOUT_BY_VALUE: dict[WiredDevice, FrameLayout] = {}


def modbus_crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (reflected polynomial 0xA001, init 0xFFFF); sent on the wire low byte first."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


# ------------------------------------------------------------------------------------------- layout


class FrameLayout:
    """What decoding needs from one device's template, computed once per device."""

    __slots__ = (
        "_items",
        "_scaled",
        "_status",
        "_unpack_all",
        "config_error",
        "data_end",
        "device_id",
        "has_crc",
        "native",
    )

    def __init__(self, device: WiredDevice) -> None:
        self.device_id = device.device_id
        self.has_crc = device.frame_check == FRAME_CHECK_MODBUS_CRC
        # A registry mistake is remembered rather than raised here, so every frame of the device is
        # dead-lettered with the same clear detail without rebuilding the layout each time.
        self.config_error: tuple[str, str] | None = None
        frame_points = [dp for dp in device.datapoints if dp.encoding != BOOL]
        self._status: tuple[tuple[str, int], ...] = tuple(
            (dp.label, dp.datapoint_id) for dp in device.datapoints if dp.encoding == BOOL
        )
        # A wired device without its template: every frame is dead-lettered naming it. (Status messages give
        # their events whatever the registry holds, and no reading without a Bool datapoint of the field's label.)
        if device.registry_problem is not None:
            self.config_error = ("unwired-position", device.registry_problem)
        for dp in frame_points:
            problem = _datapoint_problem(dp)
            if problem is not None and self.config_error is None:
                self.config_error = ("frame-length", problem)
                break
        self.data_end = max((dp.offset + dp.length for dp in frame_points), default=0)
        # (datapoint, datapoint id, multiplier, divisor): value = raw * multiplier / divisor. Dividing by
        # the exact integer 10**decimals gives the correctly rounded value (2352 / 100 == 23.52), which
        # multiplying by a float 0.01 would not.
        self._items: tuple[tuple[Datapoint, int, int, int], ...] = tuple(
            (dp, dp.datapoint_id, 10**-dp.decimals if dp.decimals < 0 else 1, 10 ** max(dp.decimals, 0))
            for dp in frame_points
        )
        self._scaled = any(mul != 1 for _, _, mul, _ in self._items)
        self._unpack_all = None if self.config_error else _combined_unpack(frame_points)
        # Slot for streaming.decoding.native: the native layout, built there on first use (None: not yet).
        self.native: object | None = None

    @staticmethod
    def for_device(device: WiredDevice) -> FrameLayout:
        """The cached layout of a device (built on first use)."""
        # id() first: hashing a WiredDevice hashes every datapoint, which costs more than decoding. The
        # entry holds the device, so its id cannot be reused by another object while the entry exists.
        entry = _LAYOUT_BY_ID.get(id(device))
        if entry is not None and entry[0] is device:
            return entry[1]
        # The registry cache may hand out equal records as new objects: share their layout by value.
        layout = _LAYOUT_BY_VALUE.get(device)
        if layout is None:
            if len(_LAYOUT_BY_VALUE) >= _MAX_CACHED_LAYOUTS:
                _LAYOUT_BY_VALUE.clear()
            layout = FrameLayout(device)
            _LAYOUT_BY_VALUE[device] = layout
        if len(_LAYOUT_BY_ID) >= _MAX_CACHED_LAYOUTS:
            _LAYOUT_BY_ID.clear()
        _LAYOUT_BY_ID[id(device)] = (device, layout)
        return layout

    @staticmethod
    def clear_cache() -> None:
        _LAYOUT_BY_ID.clear()
        _LAYOUT_BY_VALUE.clear()

    def decode(self, frame: bytes, timestamp_us: int) -> list[Reading]:
        """Readings of a frame already checked to be long enough for every datapoint."""
        device_id = self.device_id
        items = self._items
        if self._unpack_all is not None:
            raws: Iterable[int | float] = self._unpack_all(frame)
        else:
            raws = [_unpack_one(dp, frame) for dp, _, _, _ in items]
        # tuple.__new__ directly: a NamedTuple's own constructor costs twice as much, and this runs for
        # every reading.
        if self._scaled:
            return [
                _new(Reading, (timestamp_us, device_id, dp_id, raw * mul / div))
                for raw, (_, dp_id, mul, div) in zip(raws, items, strict=True)
            ]
        return [
            _new(Reading, (timestamp_us, device_id, dp_id, raw / div))
            for raw, (_, dp_id, _, div) in zip(raws, items, strict=True)
        ]

    def frame_points(self) -> list[tuple[Datapoint, str, int, int]]:
        """(datapoint, struct code, multiplier, divisor) of each frame datapoint, in template order."""
        return [(dp, _CODES[dp.encoding], mul, div) for dp, _, mul, div in self._items]

    @property
    def scaled(self) -> bool:
        """Whether any datapoint multiplies (negative decimals): value = raw * multiplier / divisor."""
        return self._scaled

    def status(self, fields: Mapping[str, object], timestamp_us: int) -> list[Reading]:
        readings = []
        for label, dp_id in self._status:
            if label in fields:
                value = fields[label]
                # `is` rather than ==: 1 and 0 compare equal to True and False but are not JSON booleans.
                if value is True:
                    readings.append(Reading(timestamp_us, self.device_id, dp_id, 1.0))
                elif value is False:
                    readings.append(Reading(timestamp_us, self.device_id, dp_id, 0.0))
                else:
                    raise DecodeError(
                        "malformed-payload",
                        f"status field {label!r} is {_shown_json(value)}; expected true or false",
                    )
        return readings

    def first_outside(self, usable: int) -> Datapoint:
        """The first datapoint that does not fit in `usable` bytes (for the error detail)."""
        for dp, _, _, _ in self._items:
            if dp.offset + dp.length > usable:
                return dp
        raise AssertionError("first_outside called for a frame that holds every datapoint")


def _datapoint_problem(dp: Datapoint) -> str | None:
    size = _SIZES.get(dp.encoding)
    name = f"datapoint {dp.label!r} (id {dp.datapoint_id})"
    if size is None:
        return f"{name} has encoding {dp.encoding!r}; expected one of {', '.join(_CODES)} or {BOOL}"
    if dp.length != size:
        return f"{name} is {dp.encoding} but the registry gives length {dp.length}; expected {size}"
    if dp.offset < 0:
        return f"{name} has negative offset {dp.offset}; expected an offset from the start of the frame"
    return None


def _combined_unpack(points: list[Datapoint]) -> Callable[[bytes], tuple[Any, ...]] | None:
    """One unpack_from for the whole frame when datapoints are in offset order without overlap."""
    fmt = [">"]
    position = 0
    for dp in points:
        if dp.offset < position:
            return None
        if dp.offset > position:
            fmt.append(f"{dp.offset - position}x")
        fmt.append(_CODES[dp.encoding])
        position = dp.offset + dp.length
    return struct.Struct("".join(fmt)).unpack_from


_SINGLE: Final[dict[str, struct.Struct]] = {name: struct.Struct(">" + code) for name, code in _CODES.items()}


def _unpack_one(dp: Datapoint, frame: bytes) -> int | float:
    value: int | float = _SINGLE[dp.encoding].unpack_from(frame, dp.offset)[0]
    return value


def _shown_json(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


# ------------------------------------------------------------------------------------------ decoding


def decode_frame(frame: bytes, device: WiredDevice, timestamp_us: int) -> list[Reading]:
    """One reading per frame datapoint of the device's template; DecodeError when the frame is unusable."""
    layout = FrameLayout.for_device(device)
    if layout.config_error is not None:
        raise DecodeError(*layout.config_error)
    size = len(frame)
    usable = size
    if layout.has_crc:
        _check_modbus_frame(frame)
        usable = size - _CRC_LEN
    if usable < layout.data_end:
        dp = layout.first_outside(usable)
        raise DecodeError(
            "frame-length",
            f"datapoint {dp.label!r} needs bytes {dp.offset}..{dp.offset + dp.length - 1} but the frame has "
            f"{usable} data-carrying bytes (of {size}); expected at least {layout.data_end}",
        )
    return layout.decode(frame, timestamp_us)


def _check_modbus_frame(frame: bytes) -> None:
    size = len(frame)
    if size < _MIN_CRC_FRAME:
        raise DecodeError(
            "frame-length", f"frame has {size} bytes; expected at least {_MIN_CRC_FRAME} (header and CRC)"
        )
    count = frame[2]
    if size != _MIN_CRC_FRAME + count:
        if frame[1] & _EXCEPTION_BIT:
            raise DecodeError(
                "frame-length",
                f"frame is a Modbus exception response (function 0x{frame[1]:02X}, exception code "
                f"{frame[2]}); expected a read response with data",
            )
        raise DecodeError(
            "frame-length",
            f"byte count {count} means {_MIN_CRC_FRAME + count} bytes; the frame has {size}",
        )
    # The CRC over the data followed by its own CRC (low byte first) is 0 for an intact frame.
    if modbus_crc16(frame):
        computed = modbus_crc16(frame[:-_CRC_LEN])
        found = frame[-2] | (frame[-1] << 8)
        raise DecodeError(
            "crc",
            f"computed CRC 0x{computed:04X} (bytes {computed & 0xFF:02X} {computed >> 8:02X}) but the frame "
            f"carries 0x{found:04X} (bytes {frame[-2]:02X} {frame[-1]:02X})",
        )


def decode_status(fields: Mapping[str, object], device: WiredDevice, timestamp_us: int) -> list[Reading]:
    """Readings of the status fields named after a Bool datapoint of the template; others are ignored."""
    return FrameLayout.for_device(device).status(fields, timestamp_us)
