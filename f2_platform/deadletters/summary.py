"""Pure: dead letters summarised by reason, controller and day, with a few samples of each group (payloads as
letters.shown_payload shows them), and the replay status of each group."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from f2_platform.deadletters.letters import DeadLetter, payload_digest, shown_payload

# A dead letter's replay status, from deadletter_replays: 'replayed', 'still-failing' or (no row) 'pending'.
PENDING = "pending"


@dataclass
class Sample:
    deadletter_partition: int
    deadletter_offset: int
    source: str  # topic:partition:offset
    mqtt_topic: str | None
    detail: str
    payload_digest: str
    payload: str


@dataclass
class Group:
    reason: str
    controller: str  # the MAC, or "-" when the record key is none
    day: date
    count: int = 0
    status: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)


def summarise(
    letters: Iterable[DeadLetter], status: Mapping[tuple[str, int, int], str], samples_per_group: int = 3
) -> list[Group]:
    """Groups ordered by day, reason and controller; `status` maps a source record to its replay outcome."""
    groups: dict[tuple[date, str, str], Group] = {}
    for letter in letters:
        controller = letter.controller or "-"
        key = (letter.at.date(), letter.reason, controller)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(letter.reason, controller, letter.at.date())
        group.count += 1
        outcome = status.get(letter.source, PENDING)
        group.status[outcome] = group.status.get(outcome, 0) + 1
        if len(group.samples) < samples_per_group:
            group.samples.append(
                Sample(
                    letter.partition,
                    letter.offset,
                    f"{letter.source_topic}:{letter.source_partition}:{letter.source_offset}",
                    letter.mqtt_topic,
                    letter.detail,
                    payload_digest(letter.value),
                    shown_payload(letter.mqtt_topic, letter.value),
                )
            )
    return [groups[k] for k in sorted(groups)]


def totals_by(groups: Iterable[Group], what: str) -> dict[str, int]:
    """Counts by `reason`, `controller` or `day` (ISO date)."""
    out: dict[str, int] = {}
    for g in groups:
        name = g.day.isoformat() if what == "day" else str(getattr(g, what))
        out[name] = out.get(name, 0) + g.count
    return dict(sorted(out.items()))


def as_table(groups: Iterable[Group]) -> str:
    """A fixed-width text table: day, reason, controller, count and replay status."""
    lines = [f"{'day':<10}  {'reason':<20}  {'controller':<12}  {'count':>7}  replay status"]
    for g in groups:
        status = ", ".join(f"{k} {v}" for k, v in sorted(g.status.items()))
        lines.append(f"{g.day.isoformat():<10}  {g.reason:<20}  {g.controller:<12}  {g.count:>7}  {status}")
    return "\n".join(lines)
