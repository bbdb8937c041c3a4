from __future__ import annotations

import pytest

from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic, build_topic, is_reader, mac_from_topic, parse_mac, parse_topic

MAC = "aabbccddee01"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (
            "tele/f2-aabbccddee01/sensor-mode/J1/sensor-1",
            MqttTopic("tele", MAC, "sensor-mode", 1, "sensor-1", "sensor", 1),
        ),
        (
            "stat/f2-aabbccddee01/access-control-mode/J2/door-sensors",
            MqttTopic("stat", MAC, "access-control-mode", 2, "door-sensors", "door-sensors", 1),
        ),
        (
            "stat/f2-0123456789ab/access-control-mode/J3/exit-buttons",
            MqttTopic("stat", "0123456789ab", "access-control-mode", 3, "exit-buttons", "exit-buttons", 1),
        ),
        (
            "stat/f2-aabbccddee04/alarm-mode/J1/motion-sensor-1",
            MqttTopic("stat", "aabbccddee04", "alarm-mode", 1, "motion-sensor-1", "motion-sensor", 1),
        ),
        (
            "stat/f2-aabbccddee01/access-control-mode/J4/strike-6",
            MqttTopic("stat", MAC, "access-control-mode", 4, "strike-6", "strike", 6),
        ),
        (
            "stat/f2-aabbccddee01/alarm-mode/J2/siren-2",
            MqttTopic("stat", MAC, "alarm-mode", 2, "siren-2", "siren", 2),
        ),
        (
            "tele/f2-aabbccddee01/access-control-mode/J1/reader-3",
            MqttTopic("tele", MAC, "access-control-mode", 1, "reader-3", "reader", 3),
        ),
        (
            "tele/f2-aabbccddee03/sensor-mode/J4/sensor-12",
            MqttTopic("tele", "aabbccddee03", "sensor-mode", 4, "sensor-12", "sensor", 12),
        ),
    ],
)
def test_parse_valid_topics(topic: str, expected: MqttTopic) -> None:
    parsed = parse_topic(topic)
    assert parsed == expected
    assert parsed.key == (expected.mac, expected.connector, expected.position)


def test_parsed_topic_is_immutable() -> None:
    parsed = parse_topic("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1")
    with pytest.raises(AttributeError):
        parsed.mac = "000000000000"  # type: ignore[misc]


def test_topic_properties() -> None:
    assert parse_topic("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1").carries_frame
    assert not parse_topic("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1").is_reader
    assert parse_topic("tele/f2-aabbccddee01/access-control-mode/J1/reader-1").is_reader
    assert not parse_topic("stat/f2-aabbccddee01/alarm-mode/J1/motion-sensor-1").carries_frame


@pytest.mark.parametrize(
    ("topic", "detail_part"),
    [
        ("", "empty"),
        ("tele/f2-AABBCCDDEE01/sensor-mode/J1/sensor-1", "lowercase hex"),
        ("tele/f2-AaBbccddee01/sensor-mode/J1/sensor-1", "lowercase hex"),
        ("tele/f2-aabbccddee0/sensor-mode/J1/sensor-1", "12 lowercase hex"),
        ("tele/f2-aabbccddee011/sensor-mode/J1/sensor-1", "12 lowercase hex"),
        ("tele/f2-aa:bb:cc:dd:ee:01/sensor-mode/J1/sensor-1", "12 lowercase hex"),
        ("tele/f2-aabbccddeezz/sensor-mode/J1/sensor-1", "12 lowercase hex"),
        ("tele/aabbccddee01/sensor-mode/J1/sensor-1", "does not start with 'f2-'"),
        ("tele/+/sensor-mode/J1/sensor-1", "wildcard"),
        ("tele/f2-aabbccddee01/#", "wildcard"),
        ("tele/f2-aabbccddee01/sensor-mode/+/sensor-1", "wildcard"),
        ("tele/f2-aabbccddee01/sensor-mode/J1", "has 4 levels"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1/extra", "has 6 levels"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1/", "has 6 levels"),
        ("/tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", "has 6 levels"),
        ("cmnd/f2-aabbccddee01/sensor-mode/J1/sensor-1", "'cmnd'"),
        ("TELE/f2-aabbccddee01/sensor-mode/J1/sensor-1", "kind 'TELE' is unknown"),
        ("info/f2-aabbccddee01/sensor-mode/J1/sensor-1", "kind 'info' is unknown"),
        ("tele/f2-aabbccddee01/party-mode/J1/sensor-1", "mode 'party-mode'"),
        ("tele/f2-aabbccddee01/sensor-mode/J5/sensor-1", "connector 'J5'"),
        ("tele/f2-aabbccddee01/sensor-mode/J0/sensor-1", "connector 'J0'"),
        ("tele/f2-aabbccddee01/sensor-mode/j1/sensor-1", "connector 'j1'"),
        ("tele/f2-aabbccddee01/sensor-mode/1/sensor-1", "connector '1'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-0", "component 'sensor-0'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-01", "component 'sensor-01'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-", "component 'sensor-'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor", "component 'sensor'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor--1", "component 'sensor--1'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1a", "component 'sensor-1a'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/thermostat-1", "component 'thermostat-1'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/door-sensors-1", "component 'door-sensors-1'"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/Sensor-1", "component 'Sensor-1'"),
        # Non-ASCII digits are digits to str.isdigit() but never part of a topic.
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-\u0661", "component"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1234567890", "component"),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1\n", "component 'sensor-1\\n'"),
    ],
)
def test_bad_topics_raise_bad_topic_with_a_clear_detail(topic: str, detail_part: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_topic(topic)
    assert caught.value.reason == "bad-topic"
    assert detail_part in caught.value.detail
    assert "\n" not in caught.value.detail


def test_bad_topic_detail_is_bounded() -> None:
    with pytest.raises(DecodeError) as caught:
        parse_topic("tele/" + "x" * 10_000)
    assert len(caught.value.detail) < 300


def test_bad_topic_detail_says_what_is_expected() -> None:
    with pytest.raises(DecodeError) as caught:
        parse_topic("tele/f2-aabbccddee01/sensor-mode/J1/sensor-01")
    assert "without leading zeros" in caught.value.detail


def test_parse_is_repeatable_for_cached_and_failing_topics() -> None:
    topic = "tele/f2-aabbccddee02/sensor-mode/J2/sensor-2"
    assert parse_topic(topic) is parse_topic(topic)
    for _ in range(2):
        with pytest.raises(DecodeError):
            parse_topic("cmnd/f2-aabbccddee02/sensor-mode/J2/sensor-2")


@pytest.mark.parametrize(
    ("topic", "mac"),
    [
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", "aabbccddee01"),
        ("stat/f2-aabbccddee04/alarm-mode/J1/motion-sensor-1", "aabbccddee04"),
        # A topic bad elsewhere still has a controller: its records keep that controller's partition.
        ("tele/f2-aabbccddee01/sensor-mode/J9/sensor-01", "aabbccddee01"),
        ("tele/f2-aabbccddee01", "aabbccddee01"),
        ("tele/f2-AABBCCDDEE01/sensor-mode/J1/sensor-1", None),
        ("tele/f2-aabbccddee0/sensor-mode/J1/sensor-1", None),
        ("tele/f2-aabbccddee011/sensor-mode/J1/sensor-1", None),
        ("tele/aabbccddee01/sensor-mode/J1/sensor-1", None),
        ("tele/+/sensor-mode/J1/sensor-1", None),
        ("f2-aabbccddee01", None),
        ("", None),
    ],
)
def test_mac_from_topic(topic: str, mac: str | None) -> None:
    assert mac_from_topic(topic) == mac


@pytest.mark.parametrize(
    ("topic", "reader"),
    [
        ("tele/f2-aabbccddee01/access-control-mode/J1/reader-1", True),
        ("stat/f2-aabbccddee01/access-control-mode/J4/reader-6", True),
        # Malformed reader topics still carry credentials: they must be redacted too.
        ("tele/f2-AABBCCDDEE01/access-control-mode/J1/reader-1", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/reader-01", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/READER-1", True),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", False),
        ("stat/f2-aabbccddee01/access-control-mode/J2/door-sensors", False),
    ],
)
def test_is_reader(topic: str, reader: bool) -> None:
    assert is_reader(topic) is reader


def test_build_topic_round_trips_through_parse() -> None:
    topic = build_topic("tele", "aabbccddee02", "sensor-mode", 2, "sensor-2")
    assert topic == "tele/f2-aabbccddee02/sensor-mode/J2/sensor-2"
    assert parse_topic(topic) == MqttTopic("tele", "aabbccddee02", "sensor-mode", 2, "sensor-2", "sensor", 2)
    assert (
        build_topic("stat", MAC, "access-control-mode", 3, "exit-buttons")
        == "stat/f2-aabbccddee01/access-control-mode/J3/exit-buttons"
    )


def test_build_topic_allows_commands_that_parse_rejects() -> None:
    topic = build_topic("cmnd", MAC, "alarm-mode", 1, "siren-1")
    assert topic == "cmnd/f2-aabbccddee01/alarm-mode/J1/siren-1"
    with pytest.raises(DecodeError):
        parse_topic(topic)


@pytest.mark.parametrize(
    ("kind", "mac", "mode", "connector", "component"),
    [
        ("info", MAC, "sensor-mode", 1, "sensor-1"),
        ("tele", "AABBCCDDEE01", "sensor-mode", 1, "sensor-1"),
        ("tele", MAC, "party-mode", 1, "sensor-1"),
        ("tele", MAC, "sensor-mode", 0, "sensor-1"),
        ("tele", MAC, "sensor-mode", 5, "sensor-1"),
        ("tele", MAC, "sensor-mode", True, "sensor-1"),
        ("tele", MAC, "sensor-mode", 1, "sensor-01"),
        ("tele", MAC, "sensor-mode", 1, "sensor-1/x"),
    ],
)
def test_build_topic_rejects_parts_outside_the_grammar(
    kind: str, mac: str, mode: str, connector: int, component: str
) -> None:
    with pytest.raises(ValueError):
        build_topic(kind, mac, mode, connector, component)


@pytest.mark.parametrize(
    ("typed", "mac"),
    [("aabbccddee01", "aabbccddee01"), ("AA:BB:CC:DD:EE:01", "aabbccddee01"), (" 0a1B2c3D4e5F\n", "0a1b2c3d4e5f")],
)
def test_a_mac_as_typed_becomes_the_topics_form(typed: str, mac: str) -> None:
    assert parse_mac(typed) == mac


@pytest.mark.parametrize(
    "typed", ["aabbccddee0", "aabbccddee011", "aabbccddee0g", "aa-bb-cc-dd-ee-01", "", "\u0660" * 12]
)
def test_what_is_not_a_mac_is_refused_saying_what_is_expected(typed: str) -> None:
    with pytest.raises(ValueError, match="is not a MAC: 12 hex digits"):
        parse_mac(typed)
