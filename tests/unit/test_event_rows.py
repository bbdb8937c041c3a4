"""The sink's pure part for events (streaming/sink/event_rows.py): f2.events records to rows or to what is wrong
with them, and the presence transitions of `seen` heartbeats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streaming.sink.event_rows import EventRow, Presence, PresenceEvent, apply_seen, parse_event
from streaming.sink.rows import RecordError

FP = "ab" * 32
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "time": "2026-03-01T10:00:00.000001Z",
        "controller_mac": "aabbccddee01",
        "controller_id": 1,
        "connector": 2,
        "component": "door-sensor-1",
        "device_id": 13,
        "kind": "state",
        "state": "open",
        "credential_fingerprint": None,
        "credential_key_id": None,
        "credential_length": None,
        "indicator_hex": None,
        "mqtt_topic": "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors",
    }
    return base | changes


def seen_record(**changes: Any) -> dict[str, Any]:
    return (
        record(
            connector=0,
            component="controller",
            kind="seen",
            state=None,
            device_id=None,
            mqtt_topic=None,
            silence_after_s=90.0,
            received_at="2026-03-01T10:00:05.5Z",
        )
        | changes
    )


def parse(data: dict[str, Any]) -> EventRow:
    return parse_event(json.dumps(data).encode())


def test_a_state_event_becomes_its_row() -> None:
    row = parse(record())
    assert row == EventRow(
        datetime(2026, 3, 1, 10, 0, 0, 1, tzinfo=UTC),
        "aabbccddee01",
        2,
        "door-sensor-1",
        "state",
        1,
        13,
        "open",
        None,
        None,
        None,
        None,
        "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors",
        None,
        None,
    )


def test_access_indicator_and_seen_records_are_read() -> None:
    access = parse(
        record(
            component="reader-1",
            kind="access",
            state=None,
            credential_fingerprint=FP,
            credential_key_id="k1",
            credential_length=11,
        )
    )
    assert (access.credential_fingerprint, access.credential_key_id, access.credential_length) == (FP, "k1", 11)
    indicator = parse(record(component="reader-1", kind="indicator", state=None, indicator_hex="02 03"))
    assert indicator.indicator_hex == "02 03"
    seen = parse(seen_record())
    assert seen.silence_after_s == 90.0
    assert seen.received_at == datetime(2026, 3, 1, 10, 0, 5, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (record(kind="presence"), "kind"),  # only the sink makes presence events
        (record(kind="alarm"), "kind"),
        (record(controller_mac="AABBCCDDEE01"), "controller_mac"),
        (record(connector=0), "connector"),
        (record(connector=True), "connector"),
        (record(component=""), "component"),
        (record(state=None), "state"),
        (record(state="Open!"), "state"),
        (record(kind="access", state=None), "credential"),
        (record(credential_length=3), "carries no credential"),
        (record(kind="indicator", state=None, indicator_hex="2 03"), "indicator_hex"),
        (record(indicator_hex="02"), "carries no indicator_hex"),
        (record(time="2026-03-01T10:00:00"), "time zone"),
        (record(time="1969-12-31T23:59:59Z"), "outside"),
        (record(time=5), "time"),
        (record(device_id=0), "device_id"),
        (record(controller_id="1"), "controller_id"),
        (record(mqtt_topic="x" * 1025), "mqtt_topic"),
        (seen_record(silence_after_s=0), "silence_after_s"),
        (seen_record(silence_after_s=True), "silence_after_s"),
        (seen_record(received_at=None), "received_at"),
        (seen_record(connector=1), "seen record"),
    ],
)
def test_a_record_the_sink_cannot_store_says_what_is_wrong(data: dict[str, Any], says: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse(data)
    assert says in str(caught.value)


def test_values_that_are_not_an_event_object_are_refused() -> None:
    for value in (None, b"not json", b"[1]"):
        with pytest.raises(RecordError):
            parse_event(value)


def seen(mac: str, at: datetime, silence: float = 30.0, cid: int | None = 1) -> EventRow:
    return EventRow(at, mac, 0, "controller", "seen", cid, None, None, None, None, None, None, None, silence, at)


def test_a_controller_seen_first_is_online_without_an_event() -> None:
    rows, events = apply_seen({}, [seen("aa0000000001", T0 + timedelta(seconds=5)), seen("aa0000000001", T0)])
    assert rows == {"aa0000000001": Presence("aa0000000001", 1, "online", T0, T0 + timedelta(seconds=5), 30.0)}
    assert events == []


def test_an_online_controller_moves_its_last_seen_and_an_old_heartbeat_changes_nothing() -> None:
    current = {"m": Presence("m", 1, "online", T0, T0 + timedelta(seconds=10), 30.0)}
    rows, events = apply_seen(current, [seen("m", T0 + timedelta(seconds=20), 60.0, None)])
    assert rows == {"m": Presence("m", None, "online", T0, T0 + timedelta(seconds=20), 60.0)}
    assert events == []
    assert apply_seen(current, [seen("m", T0 + timedelta(seconds=10)), seen("m", T0)]) == ({}, [])


def test_an_offline_controller_heard_again_is_online_with_the_outage_length() -> None:
    offline_at = T0 + timedelta(seconds=40)  # last_seen T0+10, silence 30
    current = {"m": Presence("m", 1, "offline", offline_at, T0 + timedelta(seconds=10), 30.0)}
    back = T0 + timedelta(seconds=100, microseconds=250)
    later = back + timedelta(seconds=10)
    rows, events = apply_seen(current, [seen("m", later), seen("m", back)])
    # The first heartbeat after the outage ends it, the later one only moves last_seen.
    assert events == [PresenceEvent(back, "m", 1, "online", "offline", 60.00025)]
    assert rows == {"m": Presence("m", 1, "online", back, later, 30.0)}


def test_a_heartbeat_older_than_a_premature_offline_ends_it_a_microsecond_later() -> None:
    offline_at = T0 + timedelta(seconds=40)
    current = {"m": Presence("m", 1, "offline", offline_at, T0 + timedelta(seconds=10), 30.0)}
    rows, events = apply_seen(current, [seen("m", T0 + timedelta(seconds=20))])
    tick = offline_at + timedelta(microseconds=1)
    assert events == [PresenceEvent(tick, "m", 1, "online", "offline", 1e-06)]
    assert rows["m"] == Presence("m", 1, "online", tick, T0 + timedelta(seconds=20), 30.0)
