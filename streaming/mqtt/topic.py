"""MQTT topics of F2 controllers: `<kind>/f2-<mac>/<mode>/<connector>/<component>` (docs/domain.md).

Pure string handling, no I/O. `parse_topic` runs once per record on the processor's hot path, so the
valid case is one compiled regex (memoised per distinct topic); the detailed diagnosis of a bad topic
only runs when that regex did not match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from streaming.errors import DecodeError

INGESTED_KINDS: Final[tuple[str, ...]] = ("tele", "stat")
KINDS: Final[tuple[str, ...]] = ("tele", "stat", "cmnd")
MODES: Final[tuple[str, ...]] = ("sensor-mode", "access-control-mode", "alarm-mode")
# Components whose position is the trailing `-N`.
NUMBERED_COMPONENTS: Final[tuple[str, ...]] = ("sensor", "strike", "siren", "motion-sensor", "reader")
# Components without a number sit at position 1.
UNNUMBERED_COMPONENTS: Final[tuple[str, ...]] = ("door-sensors", "exit-buttons")
# Component types whose payload is a Modbus frame in `data`; every other ingested type reports status fields.
FRAME_COMPONENT_TYPES: Final[frozenset[str]] = frozenset({"sensor"})
READER_COMPONENT_TYPE: Final[str] = "reader"

# At most 9 digits: pin positions are 1..6, and an unbounded digit run would let a hostile topic make
# int() slow or raise (Python caps int parsing at 4300 digits).
_POSITION = r"[1-9][0-9]{0,8}"
_COMPONENT = (
    rf"(?:(?P<ctype>{'|'.join(NUMBERED_COMPONENTS)})-(?P<pos>{_POSITION})"
    rf"|(?P<fixed>{'|'.join(UNNUMBERED_COMPONENTS)}))"
)
# [0-9] and [0-9a-f] rather than \d so that non-ASCII digits never match.
_TOPIC_RE: Final = re.compile(
    rf"(?P<kind>{'|'.join(KINDS)})/f2-(?P<mac>[0-9a-f]{{12}})/(?P<mode>{'|'.join(MODES)})"
    rf"/J(?P<conn>[1-4])/{_COMPONENT}"
)
_COMPONENT_RE: Final = re.compile(_COMPONENT)
_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")

_EXPECTED_SHAPE = "<kind>/f2-<mac>/<mode>/<connector>/<component>"
_EXPECTED_COMPONENT = (
    "sensor-N, strike-N, siren-N, motion-sensor-N, reader-N (N a positive integer without leading zeros), "
    "door-sensors or exit-buttons"
)
# Bounds what a hostile topic can put into a one-line dead-letter detail.
_MAX_SHOWN = 60


def parse_mac(text: str) -> str:
    """A controller's MAC as topics and the registry write it (12 lowercase hex digits) from what an operator
    types: colons and upper case are forgiven; anything else is a ValueError saying what is expected."""
    mac = text.strip().lower().replace(":", "")
    if not _MAC_RE.fullmatch(mac):
        raise ValueError(f"{text!r} is not a MAC: 12 hex digits, e.g. aabbccddee01")
    return mac


@dataclass(frozen=True, slots=True)
class MqttTopic:
    kind: str  # "tele" or "stat"
    mac: str  # 12 lowercase hex digits, as the registry stores it
    mode: str
    connector: int  # 1..4 for J1..J4
    component: str  # e.g. "sensor-1", "door-sensors"
    component_type: str  # e.g. "sensor", "door-sensors"
    position: int  # pin position; 1 for components without a number
    # Derived from component_type once (topics are memoised): read for every record on the processor's hot
    # path, where a property cost three times as much as an attribute.
    is_reader: bool = field(init=False, repr=False, compare=False)
    carries_frame: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_reader", self.component_type == READER_COMPONENT_TYPE)
        object.__setattr__(self, "carries_frame", self.component_type in FRAME_COMPONENT_TYPES)

    @property
    def key(self) -> tuple[str, int, int]:
        """The registry key of the wired device: (controller MAC, connector number, pin position)."""
        return (self.mac, self.connector, self.position)


def parse_topic(topic: str) -> MqttTopic:
    """Parse an ingestible (tele/stat) topic; raise DecodeError('bad-topic') with what was wrong."""
    return _parse_cached(topic)


# Distinct valid topics are bounded by the fleet size; errors are never cached (lru_cache does not
# cache exceptions), so a flood of bad topics cannot evict the good ones' entries.
@lru_cache(maxsize=1 << 16)
def _parse_cached(topic: str) -> MqttTopic:
    match = _TOPIC_RE.fullmatch(topic)
    if match is None or match["kind"] not in INGESTED_KINDS:
        raise DecodeError("bad-topic", _diagnose(topic))
    pos = match["pos"]
    if pos is None:
        component_type = match["fixed"]
        position = 1
        component = component_type
    else:
        component_type = match["ctype"]
        position = int(pos)
        component = f"{component_type}-{pos}"
    return MqttTopic(
        kind=match["kind"],
        mac=match["mac"],
        mode=match["mode"],
        connector=int(match["conn"]),
        component=component,
        component_type=component_type,
        position=position,
    )


def mac_from_topic(topic: str) -> str | None:
    """The controller MAC of a topic, for use as the Kafka key; None when the MAC level is not valid.

    Only the MAC level is checked, so a topic that is bad elsewhere still lands in its controller's
    partition and keeps that controller's records in order.
    """
    first = topic.find("/")
    if first < 0 or not topic.startswith("f2-", first + 1):
        return None
    end = first + 16  # "/f2-" + 12 digits
    if len(topic) != end and not topic.startswith("/", end):
        return None
    mac = topic[first + 4 : end]
    return mac if _MAC_RE.fullmatch(mac) else None


def is_reader(topic: str) -> bool:
    """True when the topic may carry reader credentials, so its payload must be redacted.

    Deliberately broader than a valid `reader-N` component: a malformed reader topic (upper-case MAC,
    `reader-01`, extra levels) still carries credentials and must not leak into a dead-letter record.
    """
    return "reader" in topic.lower()


def build_topic(kind: str, mac: str, mode: str, connector: int, component: str) -> str:
    """Build a valid topic (for the simulator); raise ValueError on any part outside the grammar."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not _MAC_RE.fullmatch(mac):
        raise ValueError(f"MAC {mac!r} is not 12 lowercase hex digits")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if isinstance(connector, bool) or not isinstance(connector, int) or not 1 <= connector <= 4:
        raise ValueError(f"connector {connector!r} is not an integer 1..4")
    if not _COMPONENT_RE.fullmatch(component):
        raise ValueError(f"component {component!r} is not one of {_EXPECTED_COMPONENT}")
    return f"{kind}/f2-{mac}/{mode}/J{connector}/{component}"


def _shown(text: str) -> str:
    """repr() keeps the detail on one line (newlines and control characters are escaped)."""
    if len(text) > _MAX_SHOWN:
        return repr(text[:_MAX_SHOWN]) + f"... ({len(text)} chars)"
    return repr(text)


def _diagnose(topic: str) -> str:
    """Say which level of a topic that failed the fast match is wrong, and what was expected."""
    if not topic:
        return f"topic is empty; expected {_EXPECTED_SHAPE}"
    if "+" in topic or "#" in topic:
        return f"topic {_shown(topic)} contains an MQTT wildcard ('+' or '#'); expected a concrete topic"
    levels = topic.split("/")
    if len(levels) != 5:
        return f"topic {_shown(topic)} has {len(levels)} levels; expected 5: {_EXPECTED_SHAPE}"
    kind, controller, mode, connector, component = levels
    if kind == "cmnd":
        return "kind 'cmnd' is a command to the device and is never ingested; expected 'tele' or 'stat'"
    if kind not in INGESTED_KINDS:
        return f"kind {_shown(kind)} is unknown; expected 'tele' or 'stat'"
    if not controller.startswith("f2-"):
        return f"controller level {_shown(controller)} does not start with 'f2-'; expected f2-<mac>"
    mac = controller[3:]
    if not _MAC_RE.fullmatch(mac):
        return f"MAC {_shown(mac)} is not 12 lowercase hex digits without separators"
    if mode not in MODES:
        return f"mode {_shown(mode)} is unknown; expected one of {', '.join(MODES)}"
    if connector not in ("J1", "J2", "J3", "J4"):
        return f"connector {_shown(connector)} is not one of J1, J2, J3, J4"
    # Only the component level is left once every other level passed.
    return f"component {_shown(component)} is unknown; expected {_EXPECTED_COMPONENT}"
