"""Pure part of the sink's events: f2.events records -> validated rows, and the presence transitions that
`seen` heartbeats cause (docs/domain.md, "Events"; the record format: docs/contracts.md)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import orjson

from streaming.credentials.keys import KEY_ID_RE
from streaming.decoding.events import (
    ACCESS,
    CONTROLLER_COMPONENT,
    CONTROLLER_CONNECTOR,
    INDICATOR,
    KINDS,
    SEEN,
    STATE,
)
from streaming.sink.rows import RecordError

ONLINE: Final = "online"
OFFLINE: Final = "offline"
_MAC_RE: Final = re.compile(r"[0-9a-f]{12}")
_COMPONENT_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,63}")
_STATE_RE: Final = re.compile(r"[a-z][a-z-]{0,31}")
_FINGERPRINT_RE: Final = re.compile(r"[0-9a-f]{64}")
_INDICATOR_RE: Final = re.compile(r"[0-9A-F]{2}(?: [0-9A-F]{2}){0,31}")
_MAX_TOPIC: Final = 1024
_INT32_END: Final = 2**31
_MIN_YEAR, _MAX_YEAR = 1970, 9999
# The outage's end comes after its start even when the controller's first message after it arrived first
# (a premature offline: see apply_seen).
_TICK: Final = timedelta(microseconds=1)


class EventRow(NamedTuple):
    """One f2.events record, validated: a row of device_events, or (kind `seen`) a presence heartbeat."""

    time: datetime
    controller_mac: str
    connector: int
    component: str
    kind: str
    controller_id: int | None
    device_id: int | None
    state: str | None
    credential_fingerprint: str | None
    credential_key_id: str | None
    credential_length: int | None
    indicator_hex: str | None
    mqtt_topic: str | None
    silence_after_s: float | None  # seen only
    received_at: datetime | None  # seen only


def parse_event(value: bytes | None) -> EventRow:
    """The row of one f2.events record, or RecordError saying what is wrong with it."""
    if value is None:
        raise RecordError("empty record value; expected the event JSON object")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError("not JSON (or not UTF-8); expected the event object") from exc
    if not isinstance(data, dict):
        raise RecordError("JSON value is not an object; expected the event object")
    kind = data.get("kind")
    if kind not in KINDS:
        raise RecordError(f"kind {_shown(kind)} is not one of {', '.join(KINDS)}")
    mac = data.get("controller_mac")
    if not isinstance(mac, str) or not _MAC_RE.fullmatch(mac):
        raise RecordError(f"controller_mac {_shown(mac)} is not 12 lowercase hex digits")
    connector, component = data.get("connector"), data.get("component")
    if kind == SEEN:
        if connector != CONTROLLER_CONNECTOR or component != CONTROLLER_COMPONENT:
            raise RecordError(
                f"a seen record has connector 0 and component 'controller', not {_shown(connector)}/{_shown(component)}"
            )
    elif type(connector) is not int or not 1 <= connector <= 4:
        raise RecordError(f"connector {_shown(connector)} is not an integer 1..4")
    if not isinstance(component, str) or not _COMPONENT_RE.fullmatch(component):
        raise RecordError(f"component {_shown(component)} is not a component name such as door-sensor-1")
    state = data.get("state")
    if kind == STATE:
        if not isinstance(state, str) or not _STATE_RE.fullmatch(state):
            raise RecordError(f"state {_shown(state)} is not a state name such as open")
    elif state is not None:
        raise RecordError(f"a {kind} event has no state; got {_shown(state)}")
    fingerprint, key_id, length = (
        data.get("credential_fingerprint"),
        data.get("credential_key_id"),
        data.get("credential_length"),
    )
    if kind == ACCESS:
        if not (
            isinstance(fingerprint, str)
            and _FINGERPRINT_RE.fullmatch(fingerprint)
            and isinstance(key_id, str)
            and KEY_ID_RE.fullmatch(key_id)
            and type(length) is int
            and 0 <= length < _INT32_END
        ):
            raise RecordError("an access event needs credential_fingerprint (64 hex), credential_key_id and length")
    elif (fingerprint, key_id, length) != (None, None, None):
        raise RecordError(f"a {kind} event carries no credential")
    indicator = data.get("indicator_hex")
    if kind == INDICATOR:
        if not isinstance(indicator, str) or not _INDICATOR_RE.fullmatch(indicator):
            raise RecordError("indicator_hex is not upper-case hex byte pairs separated by single spaces")
    elif indicator is not None:
        raise RecordError(f"a {kind} event carries no indicator_hex")
    topic = data.get("mqtt_topic")
    if topic is not None and (not isinstance(topic, str) or len(topic) > _MAX_TOPIC):
        raise RecordError(f"mqtt_topic is not a string of at most {_MAX_TOPIC} characters")
    silence: float | None = None
    received_at: datetime | None = None
    if kind == SEEN:
        given = data.get("silence_after_s")
        if not isinstance(given, int | float) or isinstance(given, bool) or not math.isfinite(given) or given <= 0:
            raise RecordError(f"silence_after_s {_shown(given)} is not a positive number of seconds")
        silence = float(given)
        received_at = _timestamp(data.get("received_at"), "received_at")
    return EventRow(
        _timestamp(data.get("time"), "time"),
        mac,
        connector,
        component,
        kind,
        _id(data.get("controller_id"), "controller_id"),
        _id(data.get("device_id"), "device_id"),
        state,
        fingerprint,
        key_id,
        length,
        indicator,
        topic,
        silence,
        received_at,
    )


def _timestamp(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise RecordError(f"{name} is not a string; expected RFC 3339 UTC")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{name} {value[:40]!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{name} {value[:40]!r} has no time zone; expected UTC (Z)")
    if not _MIN_YEAR <= parsed.year <= _MAX_YEAR:
        raise RecordError(f"{name} {value[:40]!r} is outside {_MIN_YEAR}..{_MAX_YEAR}")
    return parsed


def _id(value: object, name: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 < value < _INT32_END:
        raise RecordError(f"{name} {_shown(value)} is not null or a positive 32-bit integer")
    return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


# --- presence --------------------------------------------------------------------------------------------------
class Presence(NamedTuple):
    """A row of controller_presence."""

    controller_mac: str
    controller_id: int | None
    state: str  # online or offline
    since: datetime
    last_seen: datetime
    silence_after_s: float


class PresenceEvent(NamedTuple):
    """A presence transition: a row of device_events of kind `presence`."""

    time: datetime
    controller_mac: str
    controller_id: int | None
    state: str
    previous_state: str
    previous_duration_s: float


def apply_seen(
    current: Mapping[str, Presence], seen: Iterable[EventRow]
) -> tuple[dict[str, Presence], list[PresenceEvent]]:
    """The controller_presence rows `seen` heartbeats change, and the transitions they cause.

    A controller seen for the first time is online since that moment (no event: nothing changed state). An
    offline controller seen after its last heartbeat is online again: one `online` event whose
    previous_duration_s is the outage (from the `offline` event's time). A heartbeat no newer than the last one
    (a redelivery, a late record) changes nothing. When the offline was premature (the pipeline was behind, and
    the heartbeat that proves the controller talked arrives after the silence was declared), the online event
    follows it by a microsecond.
    """
    rows: dict[str, Presence] = {}
    events: list[PresenceEvent] = []
    for s in sorted(seen, key=lambda r: (r.controller_mac, r.received_at or r.time)):
        assert s.kind == SEEN and s.received_at is not None and s.silence_after_s is not None
        mac, at = s.controller_mac, s.received_at
        row = rows.get(mac) or current.get(mac)
        if row is None:
            rows[mac] = Presence(mac, s.controller_id, ONLINE, at, at, s.silence_after_s)
        elif at <= row.last_seen:
            continue
        elif row.state == OFFLINE:
            back = max(at, row.since + _TICK)
            outage = (back - row.since).total_seconds()
            events.append(PresenceEvent(back, mac, s.controller_id, ONLINE, OFFLINE, outage))
            rows[mac] = Presence(mac, s.controller_id, ONLINE, back, at, s.silence_after_s)
        else:
            rows[mac] = row._replace(controller_id=s.controller_id, last_seen=at, silence_after_s=s.silence_after_s)
    return rows, events
