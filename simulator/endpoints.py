"""The devices the simulator drives: each wired device with its template from the catalog, its registry ids,
its value model, and the messages it publishes (topic, payload, and the readings the payload carries)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from simulator.catalog import TEMPLATES, Template, Wiring
from simulator.frames import encode_frame, hex_text
from simulator.ledger import Reading, reading
from simulator.registry_ids import datapoint_ids, device_ids
from simulator.values import SensorModel, toggled
from streaming.registry_schema import DEFAULT_SCHEMA

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Message = tuple[str, bytes, list[Reading]]


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
    return f"stat/f2-{w.mac}/{template.status.mode}/J{w.connector}/{component}"


@dataclass
class Endpoint:
    """One wired device the simulator drives."""

    wiring: Wiring
    template: Template
    device_id: int
    datapoint_ids: dict[str, int]  # label -> the registry's datapoint id
    model: SensorModel
    topic: str = field(init=False)
    next_due: float = 0.0
    last_us: int = 0
    state: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.topic = topic_of(self.wiring, self.template)

    @property
    def mac(self) -> str:
        return self.wiring.mac

    @property
    def is_status(self) -> bool:
        return self.template.status is not None

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
        """(topic, payload, readings) or None when a status device has nothing new to say; at device time
        `at_us` (a replay), or now."""
        ts = self.stamp(at_us)
        if self.is_status:
            changed = toggled(self.state, [dp.label for dp in self.template.datapoints], rng)
            if changed is None:
                return None
            payload = json.dumps({"timestamp": device_time(ts), **changed}).encode()
            points = [(self.datapoint_ids[k], 1.0 if v else 0.0) for k, v in changed.items()]
        else:
            payload, points = self.frame_message(self.model.values(ts / 1e6), ts)
        return self.topic, payload, [reading(ts, self.device_id, dp, v) for dp, v in points]


def load_endpoints(
    registry_dsn: str, wiring: Sequence[Wiring], seed: int, schema: str = DEFAULT_SCHEMA
) -> list[Endpoint]:
    """The fleet's devices with the ids the registry assigned them; NotRegistered when one is missing."""
    unknown = sorted({w.template for w in wiring} - set(TEMPLATES))
    if unknown:
        raise ValueError(f"template(s) {', '.join(unknown)} are not in the simulator's catalog")
    labels = {name: [dp.label for dp in TEMPLATES[name].datapoints] for name in {w.template for w in wiring}}
    with psycopg.connect(registry_dsn, connect_timeout=10) as conn:
        devices = device_ids(conn, wiring, schema)
        points = datapoint_ids(conn, labels, schema)
    endpoints = []
    for w in sorted(wiring, key=lambda w: (w.mac, w.connector, w.position)):
        template = TEMPLATES[w.template]
        device_id = devices[(w.mac, w.device)]
        ids = {label: points[(w.template, label)] for label in labels[w.template]}
        rng = random.Random(f"{seed}-{device_id}")
        endpoints.append(Endpoint(w, template, device_id, ids, SensorModel(template, rng)))
    return endpoints
