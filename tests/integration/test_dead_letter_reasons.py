"""All eleven dead-letter reasons (streaming/errors.py REASONS, docs/domain.md) sent over MQTT through the running
bridge and processor in one run: each message lands as exactly one dead letter with that reason, its detail,
and the coordinates of the raw record it came from (f2.raw, its partition and offset, and the MQTT topic).

Each message is built against the sample registry (tests/sample_registry.py, docs/domain.md section 9): a
controller, connector or position the registry does not have, a frame or payload that breaks one rule. Every
payload carries a nonce so each dead letter is matched to its message and to nothing else."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest

from streaming.errors import REASONS
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.kafka_cluster import Record, end_offsets, read_committed
from tests.pipeline import Pipeline
from tests.realtime import publish, wait_for

pytestmark = [pytest.mark.integration]

# Bedroom Env: controller aabbccddee03, connector J4, position 3, template ENV-S1 (Modbus CRC frames).
WIRED = "tele/f2-aabbccddee03/sensor-mode/J4/sensor-3"
# The same controller has connector J4 (only position 3 wired) and no J1; f2-00000000dead is no controller.
GOOD_FRAME = "01 03 06 09 30 11 9E 02 64 05 B1"  # docs/domain.md: a valid ENV-S1 response
BAD_CRC_FRAME = "01 03 06 08 34 13 88 03 20 15 7E"
MAX_PAYLOAD_BYTES = 65536  # F2_PROCESSOR_MAX_PAYLOAD_BYTES' default; Mosquitto takes up to 256 kB


def cases(nonce: str, stamp: str) -> dict[str, tuple[str, bytes]]:
    """reason -> (MQTT topic, payload) of a message that can only be dead-lettered with that reason."""

    def body(**fields: object) -> bytes:
        return json.dumps({"nonce": nonce, **fields}).encode()

    return {
        # The bridge subscribes to tele/+/+/+/+: five levels it forwards, whose second is no f2-<mac>.
        "bad-topic": ("tele/controller-7/sensor-mode/J4/sensor-3", body(timestamp=stamp, data=GOOD_FRAME)),
        "malformed-payload": (WIRED, f"not json {nonce}".encode()),
        "missing-timestamp": (WIRED, body(data=GOOD_FRAME)),
        "bad-timestamp": (WIRED, body(timestamp="yesterday at noon", data=GOOD_FRAME)),
        "bad-hex": (WIRED, body(timestamp=stamp, data="01 03 zz")),
        "frame-length": (WIRED, body(timestamp=stamp, data="01 03")),
        "crc": (WIRED, body(timestamp=stamp, data=BAD_CRC_FRAME)),
        "unknown-controller": ("tele/f2-00000000dead/sensor-mode/J4/sensor-3", body(timestamp=stamp, data=GOOD_FRAME)),
        "unknown-connector": ("tele/f2-aabbccddee03/sensor-mode/J1/sensor-3", body(timestamp=stamp, data=GOOD_FRAME)),
        "unwired-position": ("tele/f2-aabbccddee03/sensor-mode/J4/sensor-7", body(timestamp=stamp, data=GOOD_FRAME)),
        "payload-too-large": (
            WIRED,
            body(timestamp=stamp, data=GOOD_FRAME, padding="x" * (MAX_PAYLOAD_BYTES + 100)),
        ),
    }


def test_every_dead_letter_reason_arrives_once_with_its_source_coordinates(
    migrated: ConnectionSettings, pipeline: Pipeline
) -> None:
    nonce = uuid.uuid4().hex
    minute = int(time.time() / 60) % 60
    sent = cases(nonce, f"2026-03-02 11:{minute:02d}:00.000001")
    assert sorted(sent) == sorted(REASONS), "a reason without a message, or a message without a reason"
    raw_start = end_offsets(migrated, topics.RAW)
    dead_start = end_offsets(migrated, topics.DEADLETTER)
    publish(migrated, list(sent.values()))

    def ours(records: list[Record]) -> list[Record]:
        return [r for r in records if nonce.encode() in (r.value or b"")]

    dead: list[Record] = []

    def all_dead() -> bool:
        nonlocal dead
        dead = ours(read_committed(migrated, topics.DEADLETTER, dead_start))
        return len(dead) >= len(sent)

    wait_for(all_dead, 60, interval=1.0, what="a dead letter for every reason")
    time.sleep(2)  # anything doubled arrives meanwhile
    dead = ours(read_committed(migrated, topics.DEADLETTER, dead_start))
    raw = ours(read_committed(migrated, topics.RAW, raw_start))

    by_reason = Counter(r.headers.get(topics.H_REASON) for r in dead)
    assert by_reason == Counter(REASONS), f"dead letters by reason: {dict(by_reason)}"
    assert len(raw) == len(sent), f"{len(raw)} raw records for {len(sent)} messages"
    raw_of = {(r.headers[topics.H_MQTT_TOPIC], r.value): r for r in raw}
    for letter in dead:
        reason = letter.headers[topics.H_REASON]
        topic, payload = sent[reason]
        assert letter.headers[topics.H_MQTT_TOPIC] == topic, (reason, letter.headers)
        assert letter.value == payload, f"{reason}: the dead letter does not carry the message's payload"
        source = raw_of[(topic, payload)]
        assert letter.headers[topics.H_SOURCE_TOPIC] == topics.RAW, (reason, letter.headers)
        assert (letter.headers[topics.H_SOURCE_PARTITION], letter.headers[topics.H_SOURCE_OFFSET]) == (
            str(source.partition),
            str(source.offset),
        ), f"{reason}: source coordinates {letter.headers} are not those of its raw record"
        assert letter.headers.get(topics.H_DETAIL), f"{reason}: no detail"
