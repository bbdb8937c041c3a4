"""Every case of the test vectors (tests/vectors/frames.json) through the pure decoding path.

The registry is docs/domain.md's sample registry (tests/sample_registry.py). Cases whose expected reason
comes from the registry lookup (unknown controller, connector or position) are checked against the
topology dict here, since the lookup itself is not pure decoding.
"""

from __future__ import annotations

import calendar
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from streaming.decoding.message import decode_message
from streaming.decoding.payload import Payload, parse_payload
from streaming.decoding.topology import Reading, WiredDevice
from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic, parse_topic
from tests.sample_registry import DEVICES_BY_NAME, TOPOLOGY, label_of

MAX_PAYLOAD_BYTES = 64 * 1024
LOOKUP_REASONS = ("unknown-controller", "unknown-connector", "unwired-position")


VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "frames.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text())["cases"]


def case_id(index: int, case: dict[str, Any]) -> str:
    outcome = case.get("expect_dead_letter") or f"{len(case.get('expect_rows', []))}-rows"
    return f"{index}-{case['topic'].split('/')[-1]}-{outcome}"


def params(cases: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(case, id=case_id(i, case)) for i, case in enumerate(cases)]


ROW_CASES = params([c for c in CASES if "expect_rows" in c])
DEAD_LETTER_CASES = params([c for c in CASES if "expect_dead_letter" in c])


def lookup(topic: MqttTopic) -> WiredDevice:
    """The registry lookup's outcome on the sample registry, with its dead-letter reasons."""
    device = TOPOLOGY.get(topic.key)
    if device is not None:
        return device
    if all(mac != topic.mac for mac, _, _ in TOPOLOGY):
        raise DecodeError("unknown-controller", f"no controller with MAC {topic.mac}")
    if all((mac, conn) != (topic.mac, topic.connector) for mac, conn, _ in TOPOLOGY):
        raise DecodeError("unknown-connector", f"controller {topic.mac} has no connector J{topic.connector}")
    raise DecodeError("unwired-position", f"nothing is wired at position {topic.position}")


def process(case: dict[str, Any]) -> tuple[Payload, WiredDevice, list[Reading]]:
    topic = parse_topic(case["topic"])
    payload = parse_payload(json.dumps(case["payload"]).encode(), MAX_PAYLOAD_BYTES)
    device = lookup(topic)
    return payload, device, decode_message(topic, payload, device)


def device_timestamp_us(text: str) -> int:
    parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return calendar.timegm(parsed.timetuple()) * 1_000_000 + parsed.microsecond


def test_vectors_hold_both_kinds_of_case() -> None:
    assert any("expect_rows" in c for c in CASES)
    assert any("expect_dead_letter" in c for c in CASES)


@pytest.mark.parametrize("case", ROW_CASES)
def test_vector_rows(case: dict[str, Any]) -> None:
    payload, device, readings = process(case)
    expected = {(row["device"], row["datapoint"]): row["value"] for row in case["expect_rows"]}
    assert {row["device"] for row in case["expect_rows"]} == {device.device_name}
    assert DEVICES_BY_NAME[device.device_name] is device
    got = {(device.device_name, label_of(device, r.datapoint_id)): r.value for r in readings}
    assert len(readings) == len(got), "one reading per datapoint"
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= 1e-9, f"{key}: decoded {got[key]!r}, expected {value!r}"
    expected_ts = device_timestamp_us(case["payload"]["timestamp"])
    assert payload.timestamp_us == expected_ts
    assert all(r.timestamp_us == expected_ts and r.device_id == device.device_id for r in readings)


@pytest.mark.parametrize("case", DEAD_LETTER_CASES)
def test_vector_dead_letters(case: dict[str, Any]) -> None:
    reason = case["expect_dead_letter"]
    if reason in LOOKUP_REASONS:
        topic = parse_topic(case["topic"])
        assert topic.key not in TOPOLOGY
    with pytest.raises(DecodeError) as caught:
        process(case)
    assert caught.value.reason == reason
    assert caught.value.detail and "\n" not in caught.value.detail


def reference_crc(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@pytest.mark.parametrize("case", params([c for c in CASES if "data" in c["payload"]] if CASES else []))
def test_vector_frames_agree_with_a_bitwise_crc(case: dict[str, Any]) -> None:
    """Cross-checks the vectors themselves: only frames expected to fail on the CRC carry a wrong one."""
    text = case["payload"]["data"]
    if case.get("expect_dead_letter") == "bad-hex":
        # Only the text is wrong (a byte split by a space): its digits alone make a frame with a right CRC.
        with pytest.raises(ValueError):
            bytes.fromhex(text)
        text = "".join(text.split())
    frame = bytes.fromhex(text)
    if len(frame) < 5 or len(frame) != 5 + frame[2]:
        assert case.get("expect_dead_letter") == "frame-length"
        return
    crc_ok = reference_crc(frame) == 0
    assert crc_ok == (case.get("expect_dead_letter") != "crc")
