"""The simulator's event traffic and its ledger: payloads as docs/domain.md describes them, and the expected
previous state and duration of docs/domain.md's own example ("Events"), computed by the reconciliation's
pure part."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import random
import re
from datetime import UTC, datetime

from simulator import behaviour
from simulator.behaviour import EventMix
from simulator.catalog import TEMPLATES, Wiring
from simulator.endpoints import Endpoint, EventContext
from simulator.fingerprints import CredentialKey
from simulator.ledger import event, rfc3339
from simulator.reconcile import ComponentState, expected_events
from simulator.values import SensorModel

MAC = "aabbccddee02"


def us(text: str) -> int:
    at = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def door(at: str, state: str, component: str = "door-sensor-1") -> dict[str, object]:
    topic = f"stat/f2-{MAC}/access-control-mode/J3/door-sensors"
    return event(us(at), MAC, 2, 3, component, 21, "state", topic, state=state)


def test_the_documented_door_example() -> None:
    # docs/domain.md: closed 10:00, closed 10:05, open 10:06, closed 10:08; given out of order.
    events = [
        door("2026-03-01 10:08:00", "closed"),
        door("2026-03-01 10:00:00", "closed"),
        door("2026-03-01 10:06:00", "open"),
        door("2026-03-01 10:05:00", "closed"),
    ]
    rows, states = expected_events(events)
    by_time = {k[0]: (v[2], v[3], v[4]) for k, v in rows.items()}
    assert by_time == {
        us("2026-03-01 10:00:00"): ("closed", None, None),
        us("2026-03-01 10:05:00"): ("closed", "closed", 300_000_000),
        us("2026-03-01 10:06:00"): ("open", "closed", 360_000_000),
        us("2026-03-01 10:08:00"): ("closed", "open", 120_000_000),
    }
    comp = (MAC, 3, "door-sensor-1")
    assert states == {comp: ComponentState("closed", us("2026-03-01 10:08:00"), us("2026-03-01 10:08:00"), 2, 21)}


def test_a_ledger_continues_what_the_database_held() -> None:
    # The database held `open` since 09:50 (a run that began before the ledger's first event).
    before = {(MAC, 3, "door-sensor-1"): ("open", us("2026-03-01 09:50:00"))}
    rows, states = expected_events([door("2026-03-01 10:00:00", "open"), door("2026-03-01 10:01:00", "closed")], before)
    assert sorted((k[0], v[3], v[4]) for k, v in rows.items()) == [
        (us("2026-03-01 10:00:00"), "open", 600_000_000),
        (us("2026-03-01 10:01:00"), "open", 660_000_000),
    ]
    assert states[(MAC, 3, "door-sensor-1")].since_us == us("2026-03-01 10:01:00")


def test_access_events_have_no_state_and_no_component_state() -> None:
    scan = event(us("2026-03-01 10:00:00"), MAC, 2, 1, "reader-2", 20, "access", "t", credential=("ab" * 32, "k1", 7))
    rows, states = expected_events([scan])
    assert list(rows.values()) == [(2, 20, None, None, None, "ab" * 32, "k1", 7, None, "t")]
    assert states == {}


def endpoint(template: str, position: int, connector: int, context: EventContext) -> Endpoint:
    w = Wiring(MAC, connector, position, f"Test {template}", template)
    t = TEMPLATES[template]
    ids = {dp.label: 900 + i for i, dp in enumerate(t.datapoints)}
    return Endpoint(w, t, 77, ids, SensorModel(t, random.Random(1)), 2, context)


def test_readers_send_bytes_literals_and_the_ledger_their_fingerprints() -> None:
    key = CredentialKey("k1", b"a-test-secret-of-16+")
    mix = EventMix(activity=1.0, indicator_share=0.3, unknown_card_share=0.2, cards=4)
    reader = endpoint("RD-1", 2, 1, EventContext(mix, behaviour.card_pool(5, 4), key))
    rng = random.Random(3)
    seen = {"access": 0, "indicator": 0}
    at = us("2026-03-01 10:00:00")  # working hours
    for k in range(200):
        msg = reader.message(rng, at + k * 1_000_000)
        assert msg is not None
        topic, payload, readings, events = msg
        assert topic == f"tele/f2-{MAC}/access-control-mode/J1/reader-2"
        body = json.loads(payload)
        assert body["timestamp"].startswith("2026-03-01 10:")
        sent = ast.literal_eval(body["data"])  # the text of a Python bytes literal
        assert isinstance(sent, bytes) and readings == []
        (e,) = events
        assert e["component"] == "reader-2" and e["device_id"] == 77 and e["controller_id"] == 2
        assert e["time"] == rfc3339(at + k * 1_000_000)
        seen[str(e["kind"])] += 1
        if e["kind"] == "access":
            assert e["credential_fingerprint"] == hmac.new(key.secret, sent, hashlib.sha256).hexdigest()
            assert (e["credential_key_id"], e["credential_length"]) == ("k1", len(sent))
            assert not (sent[:1] == b"\x02" and sent[-1:] == b"\x03")
        else:
            # An indicator response: STX .. ETX, binary inside, at most 32 bytes (docs/domain.md).
            assert sent[0] == 0x02 and sent[-1] == 0x03 and len(sent) <= 32
            assert not re.search(rb"[\x20-\x7e]{4}", sent)
            assert e["indicator_hex"] == " ".join(f"{b:02X}" for b in sent)
    assert seen["access"] > 100 and seen["indicator"] > 20


def test_status_components_send_booleans_and_their_states() -> None:
    context = EventContext(EventMix(activity=1.0))
    rng = random.Random(9)
    at = us("2026-03-01 10:00:00")
    buttons = endpoint("EB-2", 1, 4, context)
    _, payload, readings, events = buttons.message(rng, at) or ("", b"", [], [])
    fields = {k: v for k, v in json.loads(payload).items() if k != "timestamp"}
    assert set(fields) == {"exit-button-1", "exit-button-2"} and sum(fields.values()) == 1  # one was pressed
    assert {(e["component"], e["state"]) for e in events} == {
        (k, "pressed" if v else "released") for k, v in fields.items()
    }
    assert sorted(r["value"] for r in readings) == [0.0, 1.0]
    strike = endpoint("SK-1", 1, 1, context)
    _, payload, _, events = strike.message(rng, at) or ("", b"", [], [])
    assert json.loads(payload)["status"] is True
    assert [(e["component"], e["state"], e["mqtt_topic"]) for e in events] == [
        ("strike-1", "powered", f"stat/f2-{MAC}/access-control-mode/J1/strike-1")
    ]
    quiet = endpoint("SK-1", 2, 1, EventContext(EventMix(activity=0.0)))
    assert quiet.message(rng, at) is None
