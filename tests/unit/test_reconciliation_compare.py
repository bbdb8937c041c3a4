"""The reconciliation's pure comparison (f2_platform/reconciliation/compare.py): where each raw record ends up
and the differences it lists, on hand-made hop contents; and the bridge's counts record."""

from __future__ import annotations

import pytest

from f2_platform.reconciliation import model as m
from f2_platform.reconciliation.compare import HopData, reconcile
from f2_platform.reconciliation.outcome import event_key, reading_key
from streaming.bridge_counts import decode_counts, encode_counts

A, B = "aabbccddee01", "aabbccddee02"
T = 1_780_000_000_000_000


def outcome(offset: int, mac: str = A, readings=(), events=(), reason: str | None = None) -> m.RawOutcome:
    return m.RawOutcome(0, offset, mac, f"tele/f2-{mac}/sensor-mode/J1/sensor-1", frozenset(readings),
                        frozenset(events), reason)  # fmt: skip


def r(k: int) -> m.ReadingKey:
    return (T + k, 10, k)


def e(k: int) -> m.EventKey:
    return (T + k, A, 2, "door-sensor-1", "state")


def data(outcomes: list[m.RawOutcome], **kwargs) -> HopData:
    defaults: dict = {
        "bridge_counts": {
            A: sum(1 for o in outcomes if o.controller == A),
            B: sum(1 for o in outcomes if o.controller == B),
        },
        "processed_below": {0: 1000},
        "dead_letters": {},
        "decoded_topic": set(),
        "events_topic": set(),
        "stored_readings": set(),
        "stored_events": set(),
    }
    defaults.update(kwargs)
    return HopData(outcomes=outcomes, **defaults)


def test_every_record_accounted_for_passes_with_each_category_counted() -> None:
    outcomes = [
        outcome(1, readings=[r(1), r(2)]),
        outcome(2, events=[e(3)]),
        outcome(3, reason="crc"),
        outcome(4),  # decodes to nothing: ignored by rule
        outcome(5, B, reason="unknown-controller"),
        outcome(6, B, readings=[r(6)]),  # dead-lettered then, decodes now: rescuable
        outcome(7, B, readings=[r(7)]),  # dead-lettered then, decodes now, replayed since: not rescuable
    ]
    found = {r(1), r(2)}
    results = reconcile(
        data(outcomes, dead_letters={(0, 3): "crc", (0, 5): "unknown-controller", (0, 6): "unknown-controller",
                                     (0, 7): "unknown-controller"},
             decoded_topic=found, stored_readings=found | {r(7)}, events_topic={e(3)}, stored_events={e(3)})
    )  # fmt: skip
    a, b = results[A], results[B]
    assert a.passed and b.passed
    assert (a.categories[m.STORED], a.categories[m.DEAD_LETTERED], a.categories[m.IGNORED]) == (2, 1, 1)
    assert (a.readings_expected, a.readings_stored, a.events_expected, a.events_stored) == (2, 2, 1, 1)
    assert dict(b.dead_letters) == {"unknown-controller": 3} and b.rescuable == 1
    assert a.counts()["raw_records"] == a.counts()["bridge_counted"] == 4


def test_each_loss_is_listed_with_its_coordinates_and_what_is_missing() -> None:
    outcomes = [
        outcome(1, readings=[r(1), r(2)]),  # one row deleted from decoded_data
        outcome(2, readings=[r(3)]),  # never processed
        outcome(3, reason="crc"),  # no dead letter
        outcome(4, readings=[r(4), r(5)], events=[e(6)]),  # one reading and the event missing in Kafka
        outcome(1500, readings=[r(7)]),  # past the committed offset
    ]
    results = reconcile(
        data(outcomes, decoded_topic={r(1), r(2), r(4)}, stored_readings={r(1), r(4)}, bridge_counts={A: 5})
    )
    kinds = [(d.offset, d.kind, d.missing) for d in results[A].differences]
    assert kinds == [
        (1, m.MISSING_ROWS, (r(2),)),
        (2, m.NOT_PROCESSED, (r(3),)),
        (3, m.NO_DEAD_LETTER, ()),
        (4, m.MISSING_DECODED, (r(5),)),
        (4, m.MISSING_EVENTS, (e(6),)),
        (1500, m.PENDING, ()),
    ]
    assert not results[A].passed and sum(results[A].categories.values()) == 0


def test_the_sinks_dead_letters_account_for_what_it_could_not_store() -> None:
    results = reconcile(
        data([outcome(1, readings=[r(1), r(2)])], decoded_topic={r(1), r(2)}, stored_readings={r(1)},
             sink_dead_readings={r(2): "database-rejected"})
    )  # fmt: skip
    assert results[A].passed and dict(results[A].dead_letters) == {"database-rejected": 1}


def test_outputs_the_sink_has_not_reached_yet_are_pending_not_lost() -> None:
    results = reconcile(
        data([outcome(1, readings=[r(1), r(2)], events=[e(3)])], decoded_topic={r(1), r(2)}, events_topic={e(3)},
             stored_readings={r(1)}, sink_pending_readings={r(2)}, sink_pending_events={e(3)})
    )  # fmt: skip
    ((offset, kind, missing),) = [(d.offset, d.kind, d.missing) for d in results[A].differences]
    assert (offset, kind, missing) == (1, m.PENDING, (r(2), e(3)))
    assert sum(results[A].categories.values()) == 0


@pytest.mark.parametrize(("counted", "kind"), [(1, m.RAW_NOT_COUNTED), (3, m.COUNTED_NOT_IN_RAW)])
def test_raw_records_are_compared_with_the_bridges_counts(counted: int, kind: str) -> None:
    outcomes = [outcome(1), outcome(2)]
    (difference,) = reconcile(data(outcomes, bridge_counts={A: counted}))[A].differences
    assert (difference.kind, difference.partition, difference.offset) == (kind, None, None)


def test_a_controller_only_the_bridges_counted_is_listed() -> None:
    results = reconcile(data([], bridge_counts={B: 2}))
    assert results[B].differences[0].kind == m.COUNTED_NOT_IN_RAW


def test_keys_of_decoded_and_event_records() -> None:
    decoded = b'{"timestamp": "2026-01-01T00:00:00.000001Z", "device_id": 3, "datapoint_id": 4, "value": 1.5}'
    assert reading_key(decoded) == (1_767_225_600_000_001, 3, 4)
    event = (
        b'{"time": "2026-01-01T00:00:01.000000Z", "controller_mac": "aabbccddee01", "connector": 2, '
        b'"component": "reader-2", "kind": "access"}'
    )
    assert event_key(event) == (1_767_225_601_000_000, A, 2, "reader-2", "access")
    assert event_key(b'{"kind": "seen", "time": "2026-01-01T00:00:01Z"}') is None
    assert reading_key(b"not json") is None


def test_the_bridges_counts_record_round_trips_and_refuses_other_records() -> None:
    value = encode_counts("f2-bridge-x-0", b"2026-01-01T10:59:59.999999Z", {A: 3, None: 1})
    batch = decode_counts(value)
    assert (batch.bridge, batch.hour, batch.counts) == ("f2-bridge-x-0", "2026-01-01T10", {A: 3, "": 1})
    for bad in (b"[]", b"{", b'{"bridge": "b", "received_at": "2026-01-01T10:00:00Z", "counts": {"a": -1}}'):
        with pytest.raises(ValueError, match="bridge counts record"):
            decode_counts(bad)
