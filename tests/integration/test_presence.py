"""Controller presence through the running pipeline (issue 17, item 4): a controller silenced past its threshold
gets exactly one `offline` event, and when it talks again exactly one `online` event with the outage's length.

This module runs its own pipeline with a 3-second threshold for controllers the registry does not know, a
heartbeat for every message and a presence check every half second. The expected times are computed here
from the bridge's f2.received_at headers, read from f2.raw, and the threshold this module sets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.realtime import TopicReader, publish, wait_for

pytestmark = pytest.mark.integration

SILENCE_S = 3.0
SETTINGS = {
    "F2_PRESENCE_DEFAULT_SILENCE_S": str(SILENCE_S),
    "F2_PROCESSOR_PRESENCE_HEARTBEAT_S": "0",
    "F2_SINK_PRESENCE_CHECK_S": "0.5",
}


@pytest.fixture(scope="module")
def presence_pipeline(
    migrated: ConnectionSettings, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    from tests.pipeline import Pipeline, env_without_proxy

    p = Pipeline(env_without_proxy(stack_env) | SETTINGS, tmp_path_factory.mktemp("presence-daemons"))
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture()
def mac(migrated: ConnectionSettings) -> Iterator[str]:
    made = "e9" + uuid.uuid4().hex[:10]
    yield made
    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as owner:
        for table in ("device_events", "component_states", "controller_presence"):
            owner.execute(f"DELETE FROM {table} WHERE controller_mac = %s", (made,))  # noqa: S608 - fixed names


def presence_events(dsn: str, mac: str) -> list[tuple]:
    with psycopg.connect(dsn) as db:
        return db.execute(
            'SELECT "time", state, previous_state, previous_duration_s, connector, component FROM device_events '
            "WHERE controller_mac = %s AND kind = 'presence' ORDER BY \"time\"",
            (mac,),
        ).fetchall()


def received_at(raw: TopicReader, mac: str, count: int) -> list[datetime]:
    """The bridge's f2.received_at of the controller's first `count` raw records."""

    def arrived() -> bool:
        raw.poll(0.5)
        return len([r for r in raw.records if r[0] == mac.encode()]) >= count

    wait_for(arrived, 30, what="the raw records")
    stamps = [h[topics.H_RECEIVED_AT] for k, _, h in raw.records if k == mac.encode()]
    return [datetime.fromisoformat(s) for s in stamps[:count]]


def test_a_silenced_controller_goes_offline_once_and_online_again_with_the_outage(
    migrated: ConnectionSettings, presence_pipeline: object, mac: str
) -> None:
    dsn = migrated.timeseries_dsn
    raw = TopicReader(migrated, topics.RAW)
    topic = f"stat/f2-{mac}/alarm-mode/J1/motion-sensor-1"

    def message(n: int) -> tuple[str, bytes]:
        return topic, json.dumps({"timestamp": f"2025-08-01 10:00:0{n}.000000", "status": n % 2 == 0}).encode()

    publish(migrated, [message(0)])
    (first,) = received_at(raw, mac, 1)
    offline_at = first + timedelta(seconds=SILENCE_S)
    wait_for(lambda: len(presence_events(dsn, mac)) >= 1, 30, what="the offline event")
    assert presence_events(dsn, mac) == [(offline_at, "offline", "online", SILENCE_S, 0, "controller")]

    publish(migrated, [message(1)])
    second = received_at(raw, mac, 2)[1]
    outage = (second - offline_at).total_seconds()
    wait_for(lambda: len(presence_events(dsn, mac)) >= 2, 30, what="the online event")
    got = presence_events(dsn, mac)
    assert got[:2] == [
        (offline_at, "offline", "online", SILENCE_S, 0, "controller"),
        (second, "online", "offline", pytest.approx(outage, abs=1e-6), 0, "controller"),
    ]
    # Silent again: one more offline, SILENCE_S after the second message, and nothing else.
    wait_for(lambda: len(presence_events(dsn, mac)) >= 3, 30, what="the second offline event")
    with psycopg.connect(dsn) as db:
        row = db.execute(
            "SELECT state, since, last_seen, silence_after_s FROM controller_presence WHERE controller_mac = %s", (mac,)
        ).fetchone()
    final = presence_events(dsn, mac)
    assert [e[1] for e in final] == ["offline", "online", "offline"]
    assert final[2][0] == second + timedelta(seconds=SILENCE_S)
    assert row == ("offline", second + timedelta(seconds=SILENCE_S), second, SILENCE_S)
    raw.close()
