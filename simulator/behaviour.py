"""How the simulated access and alarm components behave: when they report, what they say, and which cards
the readers see. Pure (a random generator in, payload fields out), no I/O.

- Doors, exit buttons, strikes and motion sensors report a change: one door, button or status flips (a door
  pair or a button pair reports both of its fields, so the other one repeats its state).
- Sirens report only on request: mostly their unchanged status, now and then a change.
- Readers scan a token from a pool of the site's cards, now and then one never seen before (a visitor's QR
  code), and now and then answer with a light-indicator response (STX .. ETX, binary).
- Access components are busier in working hours (07:00-19:00 device time, UTC), motion sensors at night.

A reader's `data` is the text of a Python bytes literal (docs/domain.md, "Reader payloads"): `repr()` of the
token's bytes, which is what readers write.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from simulator.catalog import READER, STATE_EVENTS

STX: Final = 0x02
ETX: Final = 0x03
DAY_S: Final = 86400
WORK_HOURS: Final = (7, 19)
# How a component type's activity follows the hour: (factor inside working hours, factor outside).
_BY_HOUR: Final[dict[str, tuple[float, float]]] = {
    "door-sensors": (1.0, 0.2),
    "exit-buttons": (1.0, 0.2),
    "strike": (1.0, 0.2),
    READER: (1.0, 0.2),
    "motion-sensor": (0.4, 1.0),
    "siren": (1.0, 1.0),
}
# A siren asked for its status reports a change this often; otherwise it repeats its state.
SIREN_CHANGE: Final = 0.2


@dataclass(frozen=True)
class EventMix:
    """The shares of the event traffic (docs/contracts.md, `f2 simulate`)."""

    # Probability that a status or reader component reports at one of its ticks (one tick per interval), at
    # its busiest hours.
    activity: float = 0.3
    # Of reader messages: light-indicator responses (the rest are scans).
    indicator_share: float = 0.1
    # Of scans: tokens outside the site's pool of cards.
    unknown_card_share: float = 0.1
    # The site's cards: half QR codes (text), half NFC UIDs (binary).
    cards: int = 20

    def __post_init__(self) -> None:
        for name in ("activity", "indicator_share", "unknown_card_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a probability from 0 to 1, not {value}")
        if self.cards < 1:
            raise ValueError(f"cards must be at least 1, not {self.cards}")


def card_pool(seed: int, cards: int) -> tuple[bytes, ...]:
    """The site's cards, the same for the same seed: QR codes as text, NFC UIDs as 7 bytes starting 0x04
    (an NXP UID, never an indicator response)."""
    pool = []
    for k in range(cards):
        digest = hashlib.sha256(f"f2-sim-card-{seed}-{k}".encode()).digest()
        if k % 2 == 0:
            pool.append(f"F2-QR-{seed}-{k:04d}-{digest[:8].hex()}".encode())
        else:
            pool.append(bytes([0x04]) + digest[:6])
    return tuple(pool)


def visitor_token(rng: random.Random) -> bytes:
    """A one-off QR code."""
    return f"VISITOR-{rng.getrandbits(64):016x}".encode()


def indicator_response(rng: random.Random) -> bytes:
    """A light-indicator response: STX, a few binary bytes (no printable run), ETX."""
    body = bytes([rng.choice((0x01, 0x02, 0x03)), *(rng.randrange(0, 0x10) for _ in range(rng.randint(2, 5)))])
    return bytes([STX]) + body + bytes([ETX])


def bytes_literal(token: bytes) -> str:
    """The `data` text of a reader payload: the token as Python writes a bytes literal."""
    return repr(token)


def hex_pairs(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def reports(component_type: str, at_s: float, mix: EventMix, rng: random.Random) -> bool:
    """Whether a component of this type reports at one of its ticks, at device time `at_s` (Unix seconds)."""
    busy, quiet = _BY_HOUR.get(component_type, (1.0, 1.0))
    hour = (at_s % DAY_S) / 3600.0
    factor = busy if WORK_HOURS[0] <= hour < WORK_HOURS[1] else quiet
    return rng.random() < mix.activity * factor


def status_fields(
    component_type: str, labels: list[str], state: dict[str, bool], rng: random.Random
) -> dict[str, bool]:
    """The new full state of a status component's fields (updated in `state`)."""
    for label in labels:
        state.setdefault(label, False)
    if component_type != "siren" or rng.random() < SIREN_CHANGE:
        label = rng.choice(labels)
        state[label] = not state[label]
    return {label: state[label] for label in labels}


def reader_data(mix: EventMix, pool: Sequence[bytes], rng: random.Random) -> tuple[bytes, bool]:
    """(bytes the reader sends, True when they are a light-indicator response)."""
    if rng.random() < mix.indicator_share:
        return indicator_response(rng), True
    if not pool or rng.random() < mix.unknown_card_share:
        return visitor_token(rng), False
    return rng.choice(pool), False


def state_of(component_type: str, value: bool) -> str:
    _, when_true, when_false = STATE_EVENTS[component_type]
    return when_true if value else when_false
