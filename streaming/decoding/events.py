"""Access and alarm events of one status or reader message, and the controllers' presence heartbeats: the
records of `f2.events` (docs/contracts.md; what each message gives: docs/domain.md, "Events").

Pure, no I/O. Events do not need the registry: a component it does not know still gives its events, with the
registry ids left null (`registered` is then false). A field that must be a JSON boolean and is not, or a
reader payload that is not in the bridge's redacted form, is a DecodeError (`malformed-payload`) for the whole
message: it gives no event and no reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

import orjson

from streaming.credentials.keys import KEY_ID_RE
from streaming.decoding.decoded_format import rfc3339_from_us
from streaming.decoding.payload import Payload
from streaming.decoding.topology import ControllerTopology, WiredDevice
from streaming.errors import DecodeError
from streaming.mqtt.topic import MqttTopic

STATE: Final = "state"
ACCESS: Final = "access"
INDICATOR: Final = "indicator"
SEEN: Final = "seen"
# What the processor writes to f2.events; the sink adds "presence" events of its own.
KINDS: Final[tuple[str, ...]] = (STATE, ACCESS, INDICATOR, SEEN)
PRESENCE: Final = "presence"
# Presence concerns the whole controller: no connector, no component of its own.
CONTROLLER_CONNECTOR: Final = 0
CONTROLLER_COMPONENT: Final = "controller"

# component type (the topic's last level without its number) -> (field names, state when true, when false).
# A None pattern means the single field `status`, whose event component is the topic's own component.
_N = "[1-9][0-9]{0,8}"
STATE_FIELDS: Final[dict[str, tuple[re.Pattern[str] | None, str, str]]] = {
    "door-sensors": (re.compile(f"door-sensor-{_N}"), "open", "closed"),
    "exit-buttons": (re.compile(f"exit-button-{_N}"), "pressed", "released"),
    "motion-sensor": (None, "detected", "clear"),
    "strike": (None, "powered", "unpowered"),
    "siren": (None, "powered", "unpowered"),
}
STATUS_FIELD: Final = "status"
READER: Final = "reader"

# The bridge's redacted reader payload (docs/domain.md, "Reader payloads").
CREDENTIAL_FIELD: Final = "credential"
INDICATOR_FIELD: Final = "indicator"
UNPARSED_FIELD: Final = "unparsed"
_FINGERPRINT_RE: Final = re.compile(r"[0-9a-f]{64}")
# An indicator response is at most 32 bytes, written as upper-case hex pairs with single spaces.
_INDICATOR_RE: Final = re.compile(r"[0-9A-F]{2}(?: [0-9A-F]{2}){0,31}")
_MAX_TOKEN_LENGTH: Final = 2**31 - 1
_MAX_SHOWN = 200


class Credential(NamedTuple):
    fingerprint: str  # HMAC-SHA-256 of the token under key_id's secret, 64 lowercase hex digits
    key_id: str
    length: int  # bytes of the token


class Event(NamedTuple):
    """One event of a status or reader message."""

    timestamp_us: int  # the device's timestamp, microseconds since the epoch (UTC)
    controller_mac: str
    controller_id: int | None  # null when the registry does not know the controller
    connector: int
    component: str  # door-sensor-1, exit-button-2, motion-sensor-3, strike-1, siren-2, reader-1
    device_id: int | None  # null when the registry does not know the component (see `registered`)
    kind: str  # state, access or indicator
    state: str | None  # state events only
    credential: Credential | None  # access events only
    indicator_hex: str | None  # indicator events only
    mqtt_topic: str

    @property
    def registered(self) -> bool:
        return self.device_id is not None


def message_events(
    topic: MqttTopic,
    payload: Payload,
    device: WiredDevice | None,
    controller: ControllerTopology | None,
    mqtt_topic: str,
) -> list[Event]:
    """The events of one message (none for sensor frames); DecodeError when the message must be dead-lettered.

    `device` is what the registry wires at the topic's connector and position (None when nothing is, or the
    controller is unknown). A state event gets its device id only where that device's template has a Bool
    datapoint named like the field (as readings do); a reader's event where that device's template has no
    frame datapoints (a reader gives no readings; a sensor wired at the same pin is not the reader).
    """
    ctype = topic.component_type
    controller_id = None if controller is None else controller.controller_id
    if ctype == READER:
        return [_reader_event(topic, payload, device, controller_id, mqtt_topic)]
    rule = STATE_FIELDS.get(ctype)
    if rule is None:
        return []
    pattern, when_true, when_false = rule
    fields = payload.fields
    if pattern is None:
        named = [(STATUS_FIELD, topic.component)] if STATUS_FIELD in fields else []
    else:
        named = [(name, name) for name in fields if pattern.fullmatch(name)]
    events = []
    for field, component in named:
        value = fields[field]
        # `is`, not ==: 1 and 0 equal True and False but are not JSON booleans.
        if value is True:
            state = when_true
        elif value is False:
            state = when_false
        else:
            raise DecodeError("malformed-payload", f"status field {field!r} is {_shown(value)}; expected true or false")
        device_id = device.device_id if device is not None and _has_bool(device, field) else None
        events.append(
            Event(
                payload.timestamp_us,
                topic.mac,
                controller_id,
                topic.connector,
                component,
                device_id,
                STATE,
                state,
                None,
                None,
                mqtt_topic,
            )
        )
    return events


def check_reader_payload(fields: Mapping[str, object]) -> None:
    """A reader payload the bridge could not read (`unparsed`) is `malformed-payload` with the bridge's reason;
    checked before the timestamp, which such a payload may lack."""
    unparsed = fields.get(UNPARSED_FIELD)
    if unparsed is not None:
        reason = " ".join(unparsed.split())[:_MAX_SHOWN] if isinstance(unparsed, str) else "no reason given"
        raise DecodeError("malformed-payload", f"the bridge could not read this reader payload: {reason}")


def _reader_event(
    topic: MqttTopic, payload: Payload, device: WiredDevice | None, controller_id: int | None, mqtt_topic: str
) -> Event:
    fields = payload.fields
    check_reader_payload(fields)
    has_credential = CREDENTIAL_FIELD in fields
    has_indicator = INDICATOR_FIELD in fields
    if has_credential == has_indicator or payload.data is not None:
        # Never show the payload: an unredacted one (a record from before the bridge redacted, a tool writing
        # to f2.raw) holds the token.
        raise DecodeError(
            "malformed-payload",
            "the reader payload is not in the bridge's redacted form (exactly one of 'credential' and 'indicator',"
            " no 'data'); only the bridge should write to f2.raw, and it rewrites every reader payload",
        )
    device_id = device.device_id if device is not None and _is_status_device(device) else None
    if has_credential:
        credential = _credential(fields[CREDENTIAL_FIELD])
        return Event(
            payload.timestamp_us,
            topic.mac,
            controller_id,
            topic.connector,
            topic.component,
            device_id,
            ACCESS,
            None,
            credential,
            None,
            mqtt_topic,
        )
    indicator = fields[INDICATOR_FIELD]
    if not isinstance(indicator, str) or not _INDICATOR_RE.fullmatch(indicator):
        raise DecodeError(
            "malformed-payload",
            "reader field 'indicator' is not upper-case hex byte pairs separated by single spaces (at most 32 bytes)",
        )
    return Event(
        payload.timestamp_us,
        topic.mac,
        controller_id,
        topic.connector,
        topic.component,
        device_id,
        INDICATOR,
        None,
        None,
        indicator,
        mqtt_topic,
    )


def _credential(value: object) -> Credential:
    if isinstance(value, dict) and value.keys() == {"fingerprint", "key_id", "length"}:
        fingerprint, key_id, length = value["fingerprint"], value["key_id"], value["length"]
        if (
            isinstance(fingerprint, str)
            and _FINGERPRINT_RE.fullmatch(fingerprint)
            and isinstance(key_id, str)
            and KEY_ID_RE.fullmatch(key_id)
            and type(length) is int
            and 0 <= length <= _MAX_TOKEN_LENGTH
        ):
            return Credential(fingerprint, key_id, length)
    raise DecodeError(
        "malformed-payload",
        "reader field 'credential' is not the bridge's {fingerprint: 64 lower-case hex digits, key_id, length:"
        " a non-negative integer}",
    )


def _has_bool(device: WiredDevice, label: str) -> bool:
    return any(dp.label == label and dp.encoding == "Bool" for dp in device.datapoints)


def _is_status_device(device: WiredDevice) -> bool:
    return all(dp.encoding == "Bool" for dp in device.datapoints)


def encode_event(event: Event) -> bytes:
    """The f2.events record value of an event (docs/contracts.md)."""
    credential = event.credential
    return orjson.dumps(
        {
            "time": rfc3339_from_us(event.timestamp_us),
            "controller_mac": event.controller_mac,
            "controller_id": event.controller_id,
            "connector": event.connector,
            "component": event.component,
            "device_id": event.device_id,
            "kind": event.kind,
            "state": event.state,
            "credential_fingerprint": None if credential is None else credential.fingerprint,
            "credential_key_id": None if credential is None else credential.key_id,
            "credential_length": None if credential is None else credential.length,
            "indicator_hex": event.indicator_hex,
            "mqtt_topic": event.mqtt_topic,
        }
    )


def silence_after_s(controller: ControllerTopology | None, intervals: float, default_s: float) -> float:
    """How long a controller may stay silent before it counts as offline: `intervals` times the longest
    expected interval among its wired devices' templates, or `default_s` when none has one (or the registry
    does not know the controller)."""
    if controller is not None:
        known = [d.expected_interval_s for d in controller.wired.values() if d.expected_interval_s]
        if known:
            return float(max(known) * intervals)
    return float(default_s)


def encode_seen(mac: str, controller_id: int | None, received_at_us: int, silence_s: float) -> bytes:
    """A presence heartbeat: the controller was heard at `received_at_us` (the bridge's f2.received_at)."""
    received_at = rfc3339_from_us(received_at_us)
    return orjson.dumps(
        {
            "time": received_at,
            "controller_mac": mac,
            "controller_id": controller_id,
            "connector": CONTROLLER_CONNECTOR,
            "component": CONTROLLER_COMPONENT,
            "device_id": None,
            "kind": SEEN,
            "state": None,
            "credential_fingerprint": None,
            "credential_key_id": None,
            "credential_length": None,
            "indicator_hex": None,
            "mqtt_topic": None,
            "silence_after_s": silence_s,
            "received_at": received_at,
        }
    )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
