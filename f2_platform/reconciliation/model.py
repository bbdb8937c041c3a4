"""What the reconciliation compares and what it finds: keys of readings and events, the outcome of
re-decoding one raw record, the differences and the per-controller result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

# (device timestamp in microseconds, device_id, datapoint_id): the key of a row of decoded_data.
ReadingKey = tuple[int, int, int]
# (device timestamp in microseconds, controller MAC, connector, component, kind): the key of device_events.
EventKey = tuple[int, str, int, str, str]

# Where a raw record ended up.
STORED = "stored"  # every reading and event it gives is in decoded_data / device_events
DEAD_LETTERED = "dead-lettered"  # the processor (or the sink, for some of its outputs) dead-lettered it
IGNORED = "ignored"  # it decodes to nothing, by rule (no reading, no event, no reason)
CATEGORIES = (STORED, DEAD_LETTERED, IGNORED)

# Kinds of difference, each naming the hop where something went missing.
NOT_PROCESSED = "not-processed"  # no output and no dead letter: the processor never saw it (offset skipped)
PENDING = "pending"  # at or past the processor's (or the sink's) committed offsets: not processed (stored) yet
NO_DEAD_LETTER = "no-dead-letter"  # undecodable now, yet stored nothing and no dead letter either
MISSING_DECODED = "missing-in-f2.decoded"  # some readings of a processed record are not in f2.decoded
MISSING_EVENTS = "missing-in-f2.events"
MISSING_ROWS = "missing-in-decoded_data"  # readings the processor produced that decoded_data lacks
MISSING_EVENT_ROWS = "missing-in-device_events"
RAW_NOT_COUNTED = "raw-not-counted-by-bridge"  # more raw records than the bridges counted
COUNTED_NOT_IN_RAW = "counted-not-in-raw"  # the bridges counted more than f2.raw holds


class RawOutcome(NamedTuple):
    """One raw record of the hour and what the pure decoder makes of it with the current registry."""

    partition: int
    offset: int
    controller: str  # the record key (the controller MAC), "" when it has none
    mqtt_topic: str | None
    readings: frozenset[ReadingKey]
    events: frozenset[EventKey]
    reason: str | None  # the dead-letter reason when it does not decode


@dataclass(frozen=True)
class Difference:
    controller: str
    mqtt_topic: str | None
    partition: int | None  # f2.raw coordinates; None for a count difference of the whole controller
    offset: int | None
    kind: str
    detail: str
    # The readings (ReadingKey) or events (EventKey) found missing, when the difference is about some.
    missing: tuple[tuple[int | str, ...], ...] = ()

    def row(self) -> dict[str, object]:
        return {
            "controller": self.controller,
            "mqtt_topic": self.mqtt_topic,
            "partition": self.partition,
            "offset": self.offset,
            "kind": self.kind,
            "detail": self.detail,
            "missing": [list(key) for key in self.missing],
        }


@dataclass
class ControllerResult:
    """One hour and controller: the count at each hop, where each raw record ended up, the differences."""

    controller: str
    bridge_counted: int = 0
    raw_records: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason (processor's and sink's)
    # Dead-lettered records the current registry decodes and whose outputs are not stored yet: a replay
    # (f2 deadletters replay) would rescue them.
    rescuable: int = 0
    readings_expected: int = 0
    readings_in_decoded_topic: int = 0
    readings_stored: int = 0
    events_expected: int = 0
    events_in_events_topic: int = 0
    events_stored: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.differences

    def counts(self) -> dict[str, object]:
        return {
            "controller": self.controller,
            "bridge_counted": self.bridge_counted,
            "raw_records": self.raw_records,
            "stored": self.categories[STORED],
            "dead_lettered": self.categories[DEAD_LETTERED],
            "ignored": self.categories[IGNORED],
            "readings_expected": self.readings_expected,
            "readings_in_f2_decoded": self.readings_in_decoded_topic,
            "readings_stored": self.readings_stored,
            "events_expected": self.events_expected,
            "events_in_f2_events": self.events_in_events_topic,
            "events_stored": self.events_stored,
            "dead_letters_by_reason": dict(sorted(self.dead_letters.items())),
            "rescuable": self.rescuable,
            "differences": len(self.differences),
        }
