"""The pure parts of dead-letter replay and the trace: the processor's batch header, the summary of dead letters
by day, reason and controller, and how payloads are shown (credentials never in clear)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from f2_platform.deadletters.letters import DeadLetter, payload_digest, shown_payload
from f2_platform.deadletters.replay import ReplayFilter
from f2_platform.deadletters.summary import summarise, totals_by
from streaming.decoding.version import DECODER_VERSION
from streaming.kafka.trace_header import batch_value, parse_batch


def letter(
    offset: int, reason: str, mac: str | None, at: datetime, value: bytes = b"{}", topic: str = "f2.raw"
) -> DeadLetter:
    return DeadLetter(
        0, offset, at, reason, "why", topic, 1, 100 + offset, "tele/x", mac, mac.encode() if mac else None, value
    )


def test_batch_header_round_trip_and_ranges() -> None:
    value = batch_value([(0, 10, 19), (3, 5, 5)], 42, "0.1.0+native.0123456789ab")
    assert value == b"r42;d0.1.0+native.0123456789ab;0:10-19,3:5-5"
    parsed = parse_batch(value)
    assert (parsed.registry_version, parsed.decoder_version) == (42, "0.1.0+native.0123456789ab")
    assert [parsed.holds(0, o) for o in (9, 10, 19, 20)] == [False, True, True, False]
    assert parsed.holds(3, 5) and not parsed.holds(1, 5)


@pytest.mark.parametrize("bad", [b"", b"42;d1;0:1-2", b"rX;d1;0:1-2", b"r1;d1;0:a-2", b"r1;d1;0-1-2"])
def test_a_malformed_batch_header_says_what_is_wrong(bad: bytes) -> None:
    with pytest.raises(ValueError, match="batch header"):
        parse_batch(bad)


def test_the_decoder_version_names_the_package_and_the_build() -> None:
    version, build = DECODER_VERSION.split("+", 1)
    assert version and (build == "pure" or build.startswith("native."))


def test_summary_by_day_reason_and_controller_with_replay_status() -> None:
    day1, day2 = datetime(2026, 12, 4, 23, 59, tzinfo=UTC), datetime(2026, 12, 5, 0, 1, tzinfo=UTC)
    letters = [
        letter(1, "unknown-controller", "aabbccddee01", day1),
        letter(2, "unknown-controller", "aabbccddee01", day1),
        letter(3, "unknown-controller", "aabbccddee01", day2),
        letter(4, "crc", "aabbccddee02", day2),
        letter(5, "bad-topic", None, day2),
    ]
    status = {("f2.raw", 1, 101): "replayed", ("f2.raw", 1, 104): "still-failing"}
    groups = summarise(letters, status, samples_per_group=1)
    assert [(g.day.isoformat(), g.reason, g.controller, g.count, g.status) for g in groups] == [
        ("2026-12-04", "unknown-controller", "aabbccddee01", 2, {"replayed": 1, "pending": 1}),
        ("2026-12-05", "bad-topic", "-", 1, {"pending": 1}),
        ("2026-12-05", "crc", "aabbccddee02", 1, {"still-failing": 1}),
        ("2026-12-05", "unknown-controller", "aabbccddee01", 1, {"pending": 1}),
    ]
    assert [len(g.samples) for g in groups] == [1, 1, 1, 1]
    assert totals_by(groups, "reason") == {"bad-topic": 1, "crc": 1, "unknown-controller": 3}
    assert totals_by(groups, "day") == {"2026-12-04": 2, "2026-12-05": 3}


def test_the_filter_takes_reasons_and_controllers() -> None:
    at = datetime(2026, 12, 5, tzinfo=UTC)
    window = ReplayFilter(at, None, frozenset({"unknown-controller"}), frozenset({"aabbccddee01"}))
    assert window.wants(letter(1, "unknown-controller", "aabbccddee01", at))
    assert not window.wants(letter(1, "crc", "aabbccddee01", at))
    assert not window.wants(letter(1, "unknown-controller", "aabbccddee02", at))
    assert ReplayFilter(at).wants(letter(1, "crc", None, at))
    assert not letter(1, "malformed-payload", None, at, topic="f2.decoded").replayable


def test_reader_payloads_are_shown_without_credentials() -> None:
    token_payload = json.dumps({"timestamp": "2026-12-05 10:00:00", "data": "b'SECRET-CARD-1234'"}).encode()
    shown = shown_payload("tele/f2-aabbccddee01/access-control-mode/J1/reader-1", token_payload)
    assert "SECRET" not in shown and "data" in shown
    # The bridge's redacted form (a fingerprint) is shown as it is.
    redacted = json.dumps(
        {"timestamp": "2026-12-05 10:00:00", "credential": {"fingerprint": "ab" * 32, "key_id": "k1", "length": 16}}
    ).encode()
    assert shown_payload("tele/f2-aabbccddee01/access-control-mode/J1/reader-1", redacted) == redacted.decode()
    # Any topic naming a reader, and a record without a topic, count as a reader's.
    assert "SECRET" not in shown_payload("tele/BAD/READER-01", token_payload)
    assert "SECRET" not in shown_payload(None, token_payload)
    # A sensor frame is shown as it is, cut when long; its digest identifies it.
    frame = b'{"timestamp": "2026-12-05 10:00:00", "data": "01 03"}'
    assert shown_payload("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", frame) == frame.decode()
    assert shown_payload("tele/x/sensor-1", b"x" * 1000).endswith("...")
    assert payload_digest(frame) == payload_digest(frame) != payload_digest(frame + b" ")
