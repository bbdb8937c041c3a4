"""Which controllers' dead letters the registry would now rescue: the question the replay sensor asks after
each registry change. A controller is proposed when a few of its pending dead letters of a registry reason
(letters.REGISTRY_REASONS) decode with the registry as it is now."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from f2_platform.deadletters.letters import REGISTRY_REASONS, DeadLetter
from streaming.decoding.record import decode_record
from streaming.decoding.topology import ControllerTopology
from streaming.errors import DecodeError
from streaming.mqtt.topic import is_reader


@dataclass
class Rescue:
    controller: str
    first: datetime  # the earliest pending dead letter's time
    last: datetime
    pending: int = 0
    reasons: set[str] = field(default_factory=set)
    decoded_probes: int = 0


def rescues(
    letters: Iterable[DeadLetter],
    replayed: Mapping[tuple[str, int, int], str],
    lookup: Callable[[str], ControllerTopology | None],
    max_payload_bytes: int,
    probes: int = 3,
) -> list[Rescue]:
    """Controllers with pending dead letters of registry reasons of which at least one of the first `probes`
    now decodes (reader topics are never probed: their dead letters hold no credential to decode)."""
    pending: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        if letter.reason not in REGISTRY_REASONS or not letter.replayable or letter.controller is None:
            continue
        if replayed.get(letter.source) == "replayed":
            continue
        pending.setdefault(letter.controller, []).append(letter)
    found = []
    for mac, own in sorted(pending.items()):
        rescue = Rescue(mac, min(x.at for x in own), max(x.at for x in own), len(own), {x.reason for x in own})
        for letter in [x for x in own if x.mqtt_topic is not None and not is_reader(x.mqtt_topic)][:probes]:
            try:
                decode_record(letter.mqtt_topic, letter.value, lookup, max_payload_bytes)
            except DecodeError:
                continue
            rescue.decoded_probes += 1
        if rescue.decoded_probes:
            found.append(rescue)
    return found
