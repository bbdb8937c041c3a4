"""What a reprocessing run counts: only records of the chosen devices inside the window, whatever else f2.raw
holds (other devices, other times, records that never decoded). Pure: Kafka messages built in memory, the
topology handed in; no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from confluent_kafka import Message

from f2_platform.defs.reprocessing.redecode import Redecoder
from f2_platform.defs.reprocessing.window import Window
from streaming.decoding.topology import FRAME_CHECK_MODBUS_CRC, ControllerTopology, Datapoint, WiredDevice
from streaming.kafka import topics

MAC = "aabbccddee42"
START = datetime(2026, 3, 1, 10, tzinfo=UTC)
# ENV-S1 frames (CRC low byte first): Temperature 21.05, Humidity 50.00, CO2 800, and the same with a bad CRC.
GOOD = "01 03 06 08 39 13 88 03 20 39 BE"
BAD_CRC = "01 03 06 08 39 13 88 03 20 00 00"
POINTS = (
    Datapoint(11, "Temperature", "Int16", 3, 2, 2, "C"),
    Datapoint(12, "Humidity", "Uint16", 5, 2, 2, "%"),
    Datapoint(13, "CO2", "Uint16", 7, 2, 0, "ppm"),
)
CHOSEN, OTHER = 501, 502
TOPOLOGY = ControllerTopology(
    MAC,
    9,
    frozenset({1}),
    {
        (1, 1): WiredDevice(CHOSEN, "Chosen", 3, "ENV-S1", FRAME_CHECK_MODBUS_CRC, POINTS),
        (1, 2): WiredDevice(OTHER, "Other", 3, "ENV-S1", FRAME_CHECK_MODBUS_CRC, POINTS),
    },
)


def record(at: datetime, data: str, position: int = 1, mac: str = MAC, payload: bytes | None = None) -> Message:
    body = payload or json.dumps({"timestamp": at.strftime("%Y-%m-%d %H:%M:%S.%f"), "data": data}).encode()
    topic = f"tele/f2-{mac}/sensor-mode/J1/sensor-{position}"
    return Message(topic=topics.RAW, value=body, headers=[(topics.H_MQTT_TOPIC, topic.encode())])


def redecoder() -> Redecoder:
    window = Window(START, START + timedelta(hours=1), frozenset({CHOSEN}))
    return Redecoder(window, lambda mac: TOPOLOGY if mac == MAC else None, 65536)


def test_in_scope_records_give_readings_and_their_failures_are_counted() -> None:
    r = redecoder()
    assert [(x.device_id, x.datapoint_id, x.value) for x in r.readings(record(START, GOOD))] == [
        (CHOSEN, 11, 21.05),
        (CHOSEN, 12, 50.0),
        (CHOSEN, 13, 800.0),
    ]
    assert r.readings(record(START + timedelta(minutes=59), BAD_CRC)) == []
    assert (r.records, r.in_scope, dict(r.failures)) == (2, 2, {"crc": 1})


def test_records_outside_the_window_or_the_device_set_count_nowhere_even_when_undecodable() -> None:
    r = redecoder()
    outside = [
        record(START - timedelta(microseconds=1), BAD_CRC),  # just before the window
        record(START + timedelta(hours=1), BAD_CRC),  # the end is exclusive
        record(START, BAD_CRC, position=2),  # another device of the same controller
        record(START, GOOD, mac="ffffffffff01"),  # a controller the registry does not know
        record(START, GOOD, position=7),  # a position nothing is wired at
        record(START, GOOD, payload=b"not json"),  # no timestamp to place it in any window
    ]
    assert [x for m in outside for x in r.readings(m)] == []
    assert (r.records, r.in_scope, dict(r.failures)) == (6, 0, {})
