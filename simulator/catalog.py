"""What the simulated devices are: each template's datapoints (where a value sits in the frame and how it is
scaled), how status devices publish, and the sample fleet's wiring.

The simulator is the platform's oracle, so this is written again from docs/domain.md ("The sample registry",
"Access and alarm components") and never imported from the platform's registry data or decoder: a wrong
offset, decimals or wiring on the platform's side then shows as a difference in the reconciliation instead of
being made on both sides. Only the ids the registry assigns are looked up (simulator/endpoints.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Datapoint:
    """One value of a device: a frame field (offset from the frame's start, header included) or, with encoding
    Bool, a status field named like the label."""

    label: str
    encoding: str
    offset: int
    decimals: int


@dataclass(frozen=True)
class StatusTopic:
    """Where a status device publishes: its mode and component; a numbered component ends in its position.
    Readers publish telemetry (`tele/`), the others status (`stat/`)."""

    mode: str
    component: str
    numbered: bool
    kind: str = "stat"


@dataclass(frozen=True)
class Template:
    name: str
    datapoints: tuple[Datapoint, ...]
    status: StatusTopic | None = None  # None: a sensor publishing frames on tele/.../sensor-<position>


@dataclass(frozen=True)
class Wiring:
    """A device on a controller's connector (1..4 for J1..J4) at a pin position."""

    mac: str
    connector: int
    position: int
    device: str
    template: str


TEMPLATES: Final[dict[str, Template]] = {
    t.name: t
    for t in (
        Template(
            "ENV-S1",
            (
                Datapoint("Temperature", "Int16", 3, 2),
                Datapoint("Humidity", "Uint16", 5, 2),
                Datapoint("CO2", "Uint16", 7, 0),
            ),
        ),
        Template(
            "PM-100",
            (
                Datapoint("Voltage", "Uint16", 3, 1),
                Datapoint("Current", "Int16", 5, 3),
                Datapoint("Power", "Int32", 7, 1),
                Datapoint("Energy", "Uint32", 11, 3),
            ),
        ),
        Template(
            "PS-1",
            (
                Datapoint("Pressure", "Float32", 3, 0),
                Datapoint("Probe Temperature", "Int8", 7, 0),
                Datapoint("Battery", "Uint8", 8, 0),
            ),
        ),
        Template(
            "DS-2",
            (Datapoint("door-sensor-1", "Bool", 0, 0), Datapoint("door-sensor-2", "Bool", 0, 0)),
            StatusTopic("access-control-mode", "door-sensors", numbered=False),
        ),
        Template(
            "MS-1",
            (Datapoint("status", "Bool", 0, 0),),
            StatusTopic("alarm-mode", "motion-sensor", numbered=True),
        ),
        Template(
            "SK-1",
            (Datapoint("status", "Bool", 0, 0),),
            StatusTopic("access-control-mode", "strike", numbered=True),
        ),
        Template(
            "SR-1",
            (Datapoint("status", "Bool", 0, 0),),
            StatusTopic("alarm-mode", "siren", numbered=True),
        ),
        Template(
            "EB-2",
            (Datapoint("exit-button-1", "Bool", 0, 0), Datapoint("exit-button-2", "Bool", 0, 0)),
            StatusTopic("access-control-mode", "exit-buttons", numbered=False),
        ),
        # A reader has no datapoints: its scans give events, never readings.
        Template("RD-1", (), StatusTopic("access-control-mode", "reader", numbered=True, kind="tele")),
    )
}

# docs/domain.md, "Which messages give which events": the component type's fields and the states a true and
# a false value stand for. A None field pattern: the single field `status`, the event's component the topic's.
STATE_EVENTS: Final[dict[str, tuple[str | None, str, str]]] = {
    "door-sensors": ("door-sensor-", "open", "closed"),
    "exit-buttons": ("exit-button-", "pressed", "released"),
    "motion-sensor": (None, "detected", "clear"),
    "strike": (None, "powered", "unpowered"),
    "siren": (None, "powered", "unpowered"),
}
READER: Final = "reader"

SAMPLE_CONTROLLERS: Final[tuple[tuple[str, str], ...]] = tuple(
    (f"F2 Controller {n}", f"aabbccddee{n:02d}") for n in range(1, 5)
)

SAMPLE_WIRING: Final[tuple[Wiring, ...]] = (
    Wiring("aabbccddee01", 1, 1, "Living Room Env", "ENV-S1"),
    Wiring("aabbccddee01", 1, 2, "Hallway Env", "ENV-S1"),
    Wiring("aabbccddee01", 2, 1, "Main Door", "DS-2"),
    Wiring("aabbccddee02", 2, 2, "Kitchen Power", "PM-100"),
    Wiring("aabbccddee03", 4, 3, "Bedroom Env", "ENV-S1"),
    Wiring("aabbccddee04", 1, 1, "Lobby Motion", "MS-1"),
    Wiring("aabbccddee04", 3, 1, "Boiler Pressure", "PS-1"),
    Wiring("aabbccddee01", 2, 2, "Main Door Reader", "RD-1"),
    Wiring("aabbccddee02", 1, 1, "Back Door Strike", "SK-1"),
    Wiring("aabbccddee02", 1, 2, "Back Door Reader", "RD-1"),
    Wiring("aabbccddee02", 3, 1, "Back Door", "DS-2"),
    Wiring("aabbccddee02", 4, 1, "Back Door Exit", "EB-2"),
    Wiring("aabbccddee04", 1, 2, "Lobby Siren", "SR-1"),
    Wiring("aabbccddee04", 2, 1, "Boiler Room Motion", "MS-1"),
)
