"""The comparison itself, pure: what each hop holds for one receive hour -> a result per controller.

Each raw record of the hour ends up in exactly one place, decided in this order:
1. dead-lettered by the processor (a dead letter names its raw partition and offset) - whatever the current
   registry says of it now; when the record decodes now and what it gives is not stored yet, it counts as
   `rescuable` (a replay would store it);
2. pending: at or past the processor's committed offset, not processed yet (a difference; likewise outputs
   at or past the sink's committed offsets, not stored yet);
3. undecodable now but no dead letter: a difference (`no-dead-letter`);
4. ignored by rule: it decodes to no reading and no event;
5. otherwise its readings must be in f2.decoded and decoded_data, its events in f2.events and device_events
   (or dead-lettered by the sink, which names them): stored, or a difference for what is missing - nothing of
   it anywhere is `not-processed` (the processor never saw it).
Per controller, the raw records are also compared with what the bridges counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from f2_platform.reconciliation.model import (
    COUNTED_NOT_IN_RAW,
    DEAD_LETTERED,
    IGNORED,
    MISSING_DECODED,
    MISSING_EVENT_ROWS,
    MISSING_EVENTS,
    MISSING_ROWS,
    NO_DEAD_LETTER,
    NOT_PROCESSED,
    PENDING,
    RAW_NOT_COUNTED,
    STORED,
    ControllerResult,
    Difference,
    EventKey,
    RawOutcome,
    ReadingKey,
)

KEYS_IN_DETAIL = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class HopData:
    """What the hops hold for the hour's raw records (the readers in f2_platform/defs/reconciliation)."""

    outcomes: list[RawOutcome]
    bridge_counts: Mapping[str, int]
    # Per f2.raw partition, the processor's committed offset: records below it were processed.
    processed_below: Mapping[int, int]
    dead_letters: Mapping[tuple[int, int], str]  # (partition, offset) of f2.raw -> reason
    decoded_topic: set[ReadingKey]  # readings found in f2.decoded (read_committed)
    events_topic: set[EventKey]  # events found in f2.events (read_committed)
    stored_readings: set[ReadingKey]  # of the expected readings, those in decoded_data
    stored_events: set[EventKey]  # of the expected events, those in device_events
    sink_dead_readings: Mapping[ReadingKey, str] = field(default_factory=dict)  # the sink's dead letters
    sink_dead_events: Mapping[EventKey, str] = field(default_factory=dict)
    # Readings and events in their topic at or past the sink's committed offsets: not stored yet, not lost.
    sink_pending_readings: set[ReadingKey] = field(default_factory=set)
    sink_pending_events: set[EventKey] = field(default_factory=set)


def reconcile(data: HopData) -> dict[str, ControllerResult]:
    results: dict[str, ControllerResult] = {}

    def result(controller: str) -> ControllerResult:
        if controller not in results:
            results[controller] = ControllerResult(controller)
        return results[controller]

    for outcome in data.outcomes:
        _place(result(outcome.controller), outcome, data)
    for controller, counted in data.bridge_counts.items():
        result(controller).bridge_counted += counted
    for res in results.values():
        if res.raw_records > res.bridge_counted:
            res.differences.append(
                Difference(
                    res.controller,
                    None,
                    None,
                    None,
                    RAW_NOT_COUNTED,
                    f"f2.raw holds {res.raw_records} record(s) received this hour, the bridges counted "
                    f"{res.bridge_counted}: {res.raw_records - res.bridge_counted} did not come through a bridge",
                )
            )
        elif res.bridge_counted > res.raw_records:
            res.differences.append(
                Difference(
                    res.controller,
                    None,
                    None,
                    None,
                    COUNTED_NOT_IN_RAW,
                    f"the bridges counted {res.bridge_counted} message(s) received this hour, f2.raw holds "
                    f"{res.raw_records}: {res.bridge_counted - res.raw_records} missing between bridge and Kafka",
                )
            )
    return dict(sorted(results.items()))


def _place(res: ControllerResult, outcome: RawOutcome, data: HopData) -> None:
    res.raw_records += 1
    partition, offset = outcome.partition, outcome.offset

    def differ(kind: str, detail: str, missing: Iterable[tuple[int | str, ...]] = ()) -> None:
        res.differences.append(
            Difference(outcome.controller, outcome.mqtt_topic, partition, offset, kind, detail, tuple(missing))
        )

    reason = data.dead_letters.get((partition, offset))
    if reason is not None:
        res.categories[DEAD_LETTERED] += 1
        res.dead_letters[reason] += 1
        decodes_now = outcome.reason is None and (outcome.readings or outcome.events)
        # Unless a replay stored everything it gives already.
        if decodes_now and not (outcome.readings <= data.stored_readings and outcome.events <= data.stored_events):
            res.rescuable += 1
        return
    if offset >= data.processed_below.get(partition, 0):
        differ(PENDING, "not processed yet: at or past the processor's committed offset")
        return
    if outcome.reason is not None:
        differ(NO_DEAD_LETTER, f"does not decode ({outcome.reason}) yet has no dead letter")
        return
    readings, events = outcome.readings, outcome.events
    if not readings and not events:
        res.categories[IGNORED] += 1
        return
    res.readings_expected += len(readings)
    res.events_expected += len(events)
    readings_out = readings & data.decoded_topic
    events_out = events & data.events_topic
    if not readings_out and not events_out:
        differ(
            NOT_PROCESSED,
            f"none of its {len(readings)} reading(s) and {len(events)} event(s) is in f2.decoded or f2.events, "
            "and no dead letter names it: the processor never processed it",
            sorted(readings) + sorted(events),
        )
        return
    res.readings_in_decoded_topic += len(readings_out)
    res.events_in_events_topic += len(events_out)
    if readings_out != readings:
        lost = sorted(readings - readings_out)
        differ(MISSING_DECODED, f"{len(lost)} reading(s) not in f2.decoded: {_readings_text(lost)}", lost)
    if events_out != events:
        lost_events = sorted(events - events_out)
        differ(
            MISSING_EVENTS, f"{len(lost_events)} event(s) not in f2.events: {_events_text(lost_events)}", lost_events
        )
    sink_dead = [data.sink_dead_readings[k] for k in readings_out if k in data.sink_dead_readings]
    sink_dead += [data.sink_dead_events[k] for k in events_out if k in data.sink_dead_events]
    rows_lost = sorted(k for k in readings_out - data.stored_readings if k not in data.sink_dead_readings)
    events_lost = sorted(k for k in events_out - data.stored_events if k not in data.sink_dead_events)
    waiting = [k for k in rows_lost if k in data.sink_pending_readings]
    waiting_events = [k for k in events_lost if k in data.sink_pending_events]
    if waiting or waiting_events:
        differ(
            PENDING,
            f"{len(waiting)} reading(s) and {len(waiting_events)} event(s) not stored yet: at or past the sink's "
            "committed offsets",
            [*waiting, *waiting_events],
        )
        rows_lost = [k for k in rows_lost if k not in data.sink_pending_readings]
        events_lost = [k for k in events_lost if k not in data.sink_pending_events]
    res.readings_stored += len(readings_out & data.stored_readings)
    res.events_stored += len(events_out & data.stored_events)
    if rows_lost:
        differ(MISSING_ROWS, f"{len(rows_lost)} reading(s) not in decoded_data: {_readings_text(rows_lost)}", rows_lost)
    if events_lost:
        differ(
            MISSING_EVENT_ROWS,
            f"{len(events_lost)} event(s) not in device_events: {_events_text(events_lost)}",
            events_lost,
        )
    if readings_out != readings or events_out != events or rows_lost or events_lost or waiting or waiting_events:
        return
    if sink_dead:
        res.categories[DEAD_LETTERED] += 1
        for why in set(sink_dead):
            res.dead_letters[why] += 1
    else:
        res.categories[STORED] += 1


def time_text(timestamp_us: int) -> str:
    return (_EPOCH + timedelta(microseconds=timestamp_us)).isoformat().replace("+00:00", "Z")


def _readings_text(keys: list[ReadingKey]) -> str:
    shown = ", ".join(f"device {d} datapoint {p} at {time_text(t)}" for t, d, p in keys[:KEYS_IN_DETAIL])
    return shown + (f" (+{len(keys) - KEYS_IN_DETAIL} more)" if len(keys) > KEYS_IN_DETAIL else "")


def _events_text(keys: list[EventKey]) -> str:
    shown = ", ".join(
        f"{kind} of {part} (connector {c}) at {time_text(t)}" for t, _, c, part, kind in keys[:KEYS_IN_DETAIL]
    )
    return shown + (f" (+{len(keys) - KEYS_IN_DETAIL} more)" if len(keys) > KEYS_IN_DETAIL else "")
