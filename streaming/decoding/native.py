"""One MQTT message straight to the decoded records the processor writes: its per-frame hot path.

A well-formed hex frame of a device with a usable layout goes through the native extension
(streaming/decoding/_frame_records.c), which returns exactly the records the pure path builds. Everything
else, and every message when the extension is not built, takes the pure path, `readings_of` then
`encode_readings`, which decides and explains every bad input.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final, Protocol

from streaming.decoding.decoded_format import KEY, VALUE_HEAD, VALUE_MIDDLE, VALUE_TAIL, encode_readings
from streaming.decoding.frames import FrameLayout
from streaming.decoding.payload import Payload
from streaming.decoding.record import Resolved, readings_of
from streaming.decoding.topology import WiredDevice
from streaming.mqtt.topic import MqttTopic

Records = list[tuple[bytes, bytes]]


class _NativeLayout(Protocol):
    def records(self, hex_text: str, timestamp_us: int) -> Records | None: ...


def _load_extension() -> ModuleType | None:
    try:
        from streaming.decoding import _frame_records  # type: ignore[attr-defined]
    except ImportError:
        return None
    module: ModuleType = _frame_records
    return module


_EXTENSION: Final = _load_extension()
NATIVE: Final[bool] = _EXTENSION is not None
# Marks a layout the extension cannot take (a registry mistake, a scale beyond 2**53): pure path for good.
_UNSUPPORTED: Final = object()


def frame_records(topic: MqttTopic, payload: Payload, device: WiredDevice) -> Records:
    """(key, value) records of one message's readings; DecodeError when it has none to give."""
    if _EXTENSION is not None and topic.carries_frame and payload.data is not None:
        native = _native_layout(FrameLayout.for_device(device))
        if native is not None:
            records = native.records(payload.data, payload.timestamp_us)
            if records is not None:
                return records
    return pure_frame_records(topic, payload, device)


def pure_frame_records(topic: MqttTopic, payload: Payload, device: WiredDevice) -> Records:
    """The same records through the pure-Python decoder and encoder."""
    return encode_readings(readings_of(Resolved(topic, payload, device, None)))


def _native_layout(layout: FrameLayout) -> _NativeLayout | None:
    native = layout.native
    if native is None:
        native = layout.native = _build_native(layout)
    return None if native is _UNSUPPORTED else native  # type: ignore[return-value]


def _build_native(layout: FrameLayout) -> object:
    assert _EXTENSION is not None
    if layout.config_error is not None:
        return _UNSUPPORTED
    items = [
        (
            dp.offset,
            code,
            mul,
            div,
            KEY % (layout.device_id, dp.datapoint_id),
            VALUE_MIDDLE % (layout.device_id, dp.datapoint_id),
        )
        for dp, code, mul, div in layout.frame_points()
    ]
    try:
        native: object = _EXTENSION.Layout(
            items, layout.has_crc, layout.scaled, layout.data_end, VALUE_HEAD, VALUE_TAIL
        )
    except (ValueError, OverflowError, TypeError):
        return _UNSUPPORTED
    return native
