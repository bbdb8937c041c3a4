"""The devices the simulator drives: each wired device with its template from the catalog, its registry ids,
its value model, and the messages it publishes (topic, payload, the readings the payload carries and the events
it must give)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from simulator import behaviour
from simulator.behaviour import EventMix
from simulator.catalog import READER, STATE_EVENTS, TEMPLATES, Template, Wiring
from simulator.fingerprints import CredentialKey
from simulator.frames import encode_frame, hex_text
from simulator.ledger import LedgerEvent, Reading, event, reading
from simulator.registry_ids import controller_ids, datapoint_ids, device_ids
from simulator.values import SensorModel
from streaming.registry_schema import DEFAULT_SCHEMA

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Message = tuple[str, bytes, list[Reading], list[LedgerEvent]]


def device_time(timestamp_us: int) -> str:
    """A payload's `timestamp` as controllers send it: '2024-05-25 15:13:10.543400', naive UTC."""
    return (_EPOCH + timedelta(microseconds=timestamp_us)).strftime("%Y-%m-%d %H:%M:%S.%f")


def topic_of(w: Wiring, template: Template) -> str:
    """docs/domain.md's topics: tele/f2-<mac>/sensor-mode/J<connector>/sensor-<position> for sensors,
    stat/f2-<mac>/<mode>/J<connector>/<component>[-<position>] for status devices."""
    if template.status is None:
        return f"tele/f2-{w.mac}/sensor-mode/J{w.connector}/sensor-{w.position}"
    component = template.status.component
    if template.status.numbered:
        component = f"{component}-{w.position}"
    return f"{template.status.kind}/f2-{w.mac}/{template.status.mode}/J{w.connector}/{component}"


def component_of(w: Wiring, template: Template) -> str:
    """The topic's last level: reader-2, strike-1, door-sensors, sensor-3."""
    return topic_of(w, template).rsplit("/", 1)[1]


@dataclass(frozen=True)
class EventContext:
    """What the event traffic needs besides the endpoint: the shares, the readers' cards and the key their
    fingerprints are made with (None: no fingerprint can be predicted)."""

    mix: EventMix = field(default_factory=EventMix)
    cards: tuple[bytes, ...] = ()
    key: CredentialKey | None = None


@dataclass
class Endpoint:
    """One device the simulator drives (`device_id` None: a component the registry is not told about)."""

    wiring: Wiring
    template: Template
    device_id: int | None
    datapoint_ids: dict[str, int]  # label -> the registry's datapoint id
    model: SensorModel
    controller_id: int | None = None
    events: EventContext = field(default_factory=EventContext)
    topic: str = field(init=False)
    component: str = field(init=False)
    next_due: float = 0.0
    last_us: int = 0
    state: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.topic = topic_of(self.wiring, self.template)
        self.component = component_of(self.wiring, self.template)

    @property
    def mac(self) -> str:
        return self.wiring.mac

    @property
    def is_status(self) -> bool:
        return self.template.status is not None

    @property
    def component_type(self) -> str:
        return "sensor" if self.template.status is None else self.template.status.component

    def stamp(self, at_us: int | None = None) -> int:
        # Distinct per sensor even at millisecond intervals: two readings never share a key. `at_us` is the
        # device time of a replayed frame; live frames carry the wall clock.
        now_us = time.time_ns() // 1000 if at_us is None else at_us
        self.last_us = max(now_us, self.last_us + 1)
        return self.last_us

    def frame_message(self, values: dict[str, float], ts_us: int) -> tuple[bytes, list[tuple[int, float]]]:
        """(payload, (datapoint id, value) of each reading) of a frame carrying `values`."""
        frame = encode_frame(values, self.template.datapoints)
        payload = json.dumps({"timestamp": device_time(ts_us), "data": hex_text(frame)}).encode()
        return payload, [(self.datapoint_ids[label], v) for label, v in values.items()]

    def message(self, rng: random.Random, at_us: int | None = None) -> Message | None:
        """(topic, payload, readings, events) or None when a status device or reader has nothing to say at this
        tick; at device time `at_us` (a replay), or now."""
        if not self.is_status:
            if self.device_id is None:
                raise ValueError(f"{self.topic}: a sensor the registry does not know gives no readings to predict")
            ts = self.stamp(at_us)
            payload, points = self.frame_message(self.model.values(ts / 1e6), ts)
            return self.topic, payload, [reading(ts, self.device_id, dp, v) for dp, v in points], []
        at_s = time.time() if at_us is None else at_us / 1e6
        if not behaviour.reports(self.component_type, at_s, self.events.mix, rng):
            return None
        ts = self.stamp(at_us)
        if self.component_type == READER:
            return self._reader_message(ts, rng)
        labels = [dp.label for dp in self.template.datapoints]
        fields = behaviour.status_fields(self.component_type, labels, self.state, rng)
        payload = json.dumps({"timestamp": device_time(ts), **fields}).encode()
        # Readings: each field that is a Bool datapoint of the device's template (all of them, in the catalog),
        # where the registry knows the device.
        readings = (
            []
            if self.device_id is None
            else [reading(ts, self.device_id, self.datapoint_ids[k], 1.0 if v else 0.0) for k, v in fields.items()]
        )
        prefix, _, _ = STATE_EVENTS[self.component_type]
        events = [
            self._event(
                ts,
                self.component if prefix is None else label,
                "state",
                state=behaviour.state_of(self.component_type, value),
            )
            for label, value in fields.items()
        ]
        return self.topic, payload, readings, events

    def _reader_message(self, ts: int, rng: random.Random) -> Message:
        data, is_indicator = behaviour.reader_data(self.events.mix, self.events.cards, rng)
        payload = json.dumps({"timestamp": device_time(ts), "data": behaviour.bytes_literal(data)}).encode()
        if is_indicator:
            ev = self._event(ts, self.component, "indicator", indicator_hex=behaviour.hex_pairs(data))
        else:
            # Without the key no fingerprint can be predicted: `f2 simulate` then refuses to keep a ledger.
            key = self.events.key
            credential = None if key is None else (key.fingerprint(data), key.key_id, len(data))
            ev = self._event(ts, self.component, "access", credential=credential)
        return self.topic, payload, [], [ev]

    def _event(self, ts: int, component: str, kind: str, **details: object) -> LedgerEvent:
        return event(
            ts,
            self.mac,
            self.controller_id,
            self.wiring.connector,
            component,
            self.device_id,
            kind,
            self.topic,
            **details,  # type: ignore[arg-type]
        )


def load_endpoints(
    registry_dsn: str,
    wiring: Sequence[Wiring],
    seed: int,
    schema: str = DEFAULT_SCHEMA,
    *,
    unregistered: Sequence[Wiring] = (),
    events: EventContext | None = None,
) -> list[Endpoint]:
    """The fleet's devices with the ids the registry assigned them (NotRegistered when one is missing), and
    the `unregistered` components, which have none."""
    unknown = sorted({w.template for w in (*wiring, *unregistered)} - set(TEMPLATES))
    if unknown:
        raise ValueError(f"template(s) {', '.join(unknown)} are not in the simulator's catalog")
    labels = {name: [dp.label for dp in TEMPLATES[name].datapoints] for name in {w.template for w in wiring}}
    with psycopg.connect(registry_dsn, connect_timeout=10) as conn:
        devices = device_ids(conn, wiring, schema)
        points = datapoint_ids(conn, labels, schema)
        controllers = controller_ids(conn, sorted({w.mac for w in (*wiring, *unregistered)}), schema)
    context = events or EventContext()
    endpoints = []
    for w in sorted(wiring, key=lambda w: (w.mac, w.connector, w.position)):
        template = TEMPLATES[w.template]
        device_id = devices[(w.mac, w.device)]
        ids = {label: points[(w.template, label)] for label in labels[w.template]}
        rng = random.Random(f"{seed}-{device_id}")
        model = SensorModel(template, rng)
        endpoints.append(Endpoint(w, template, device_id, ids, model, controllers.get(w.mac), context))
    for w in sorted(unregistered, key=lambda w: (w.mac, w.connector, w.position)):
        template = TEMPLATES[w.template]
        model = SensorModel(template, random.Random(f"{seed}-{w.mac}-{w.device}"))
        endpoints.append(Endpoint(w, template, None, {}, model, controllers.get(w.mac), context))
    return endpoints
