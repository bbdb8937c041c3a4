"""What the registry says about one wired device: the value objects the decoder works on.

Pure data, no I/O. The registry layer builds them; the cache layer serialises them; the decoder reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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
    # Why the registry rows of this device cannot be decoded (its template is missing), or None: every
    # message of the device is then dead-lettered with this detail rather than silently giving nothing.
    registry_problem: str | None = None
    # The template's expected_interval_s: how often the device reports (None: on change only). The longest
    # among a controller's devices sets when the controller counts as silent (presence).
    expected_interval_s: int | None = None


class Reading(NamedTuple):
    """One decoded value: what the sink stores as a row of decoded_data.

    A NamedTuple rather than a frozen dataclass: the processor builds several per frame, and a frozen
    dataclass's constructor costs three times as much."""

    timestamp_us: int  # microseconds since the Unix epoch, UTC
    device_id: int
    datapoint_id: int
    value: float


@dataclass(frozen=True, slots=True)
class ControllerTopology:
    """Everything wired to one controller: which connectors exist and which device sits on each pin."""

    mac: str
    controller_id: int
    connectors: frozenset[int]
    wired: dict[tuple[int, int], WiredDevice]

    def resolve(self, connector: int, position: int) -> WiredDevice:
        from streaming.errors import DecodeError

        device = self.wired.get((connector, position))
        if device is not None:
            return device
        if connector not in self.connectors:
            raise DecodeError(
                "unknown-connector",
                f"controller {self.mac} has no connector J{connector} in the registry; "
                f"known: {', '.join(f'J{c}' for c in sorted(self.connectors)) or 'none'}",
            )
        raise DecodeError(
            "unwired-position",
            f"nothing is wired at J{connector} position {position} of controller {self.mac}; "
            "wire a device there in the registry (pins table)",
        )

    def to_json(self) -> dict[str, object]:
        return {
            "mac": self.mac,
            "controller_id": self.controller_id,
            "connectors": sorted(self.connectors),
            "wired": [
                {
                    "connector": c,
                    "position": p,
                    "device_id": d.device_id,
                    "device_name": d.device_name,
                    "template_id": d.template_id,
                    "template_name": d.template_name,
                    "frame_check": d.frame_check,
                    "datapoints": [
                        [
                            dp.datapoint_id,
                            dp.label,
                            dp.encoding,
                            dp.offset,
                            dp.length,
                            dp.decimals,
                            dp.unit,
                            dp.min_value,
                            dp.max_value,
                        ]
                        for dp in d.datapoints
                    ],
                    **({"registry_problem": d.registry_problem} if d.registry_problem is not None else {}),
                    **({"expected_interval_s": d.expected_interval_s} if d.expected_interval_s is not None else {}),
                }
                for (c, p), d in sorted(self.wired.items())
            ],
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> ControllerTopology:
        wired: dict[tuple[int, int], WiredDevice] = {}
        for w in data["wired"]:  # type: ignore[attr-defined]
            wired[(int(w["connector"]), int(w["position"]))] = WiredDevice(
                device_id=int(w["device_id"]),
                device_name=str(w["device_name"]),
                template_id=int(w["template_id"]),
                template_name=str(w["template_name"]),
                frame_check=str(w["frame_check"]),
                datapoints=tuple(Datapoint(*dp) for dp in w["datapoints"]),
                registry_problem=w.get("registry_problem"),
                expected_interval_s=w.get("expected_interval_s"),
            )
        return ControllerTopology(
            mac=str(data["mac"]),
            controller_id=int(data["controller_id"]),  # type: ignore[call-overload]
            connectors=frozenset(int(c) for c in data["connectors"]),  # type: ignore[attr-defined]
            wired=wired,
        )
