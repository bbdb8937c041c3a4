"""Every case of the test vectors (tests/vectors/frames.json), published over MQTT, ends as exactly the expected
rows or exactly one dead letter with the expected reason; the daemons keep running throughout."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.realtime import TopicReader, publish, wait_for
from tests.unit.test_decoder_vectors import CASES

pytestmark = pytest.mark.integration


def _ids(dsn: str) -> dict[tuple[str, str], tuple[int, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            'SELECT d.devicename, dp.label, d.deviceid, dp.datapointid FROM "VtDevice".devices d '
            'JOIN "VtDevice".datapoints dp ON dp.devicetemplateid = d.devicetemplateid'
        ).fetchall()
    return {(name, label): (device_id, dp_id) for name, label, device_id, dp_id in rows}


def _ts(device_time: str) -> datetime:
    return datetime.fromisoformat(device_time).replace(tzinfo=UTC)


def test_every_vector_lands_exactly_as_expected(migrated: ConnectionSettings, pipeline) -> None:
    ids = _ids(migrated.registry_dsn)
    dead = TopicReader(migrated, topics.DEADLETTER)
    payloads = [(case["topic"], json.dumps(case["payload"]).encode()) for case in CASES]
    publish(migrated, payloads)

    row_cases = [c for c in CASES if "expect_rows" in c]
    dead_cases = [c for c in CASES if "expect_dead_letter" in c]

    def rows_of(case: dict) -> dict[int, float]:
        device_ids = {ids[(r["device"], r["datapoint"])][0] for r in case["expect_rows"]}
        with psycopg.connect(migrated.timeseries_dsn) as conn:
            rows = conn.execute(
                'SELECT datapoint_id, value FROM decoded_data WHERE "timestamp" = %s AND device_id = ANY(%s)',
                (_ts(case["payload"]["timestamp"]), sorted(device_ids)),
            ).fetchall()
        return dict(rows)

    def expected_of(case: dict) -> dict[int, float]:
        return {ids[(r["device"], r["datapoint"])][1]: r["value"] for r in case["expect_rows"]}

    wait_for(lambda: all(len(rows_of(c)) >= len(c["expect_rows"]) for c in row_cases), 60, what="the vectors' rows")
    for case in row_cases:
        got, want = rows_of(case), expected_of(case)
        assert set(got) == set(want), case["topic"]
        for dp, value in want.items():
            assert abs(got[dp] - value) <= 1e-9, (case["topic"], dp, got[dp], value)

    def matching(case: dict) -> list[dict[str, str]]:
        body = json.dumps(case["payload"]).encode()
        return [h for _, v, h in dead.records if v == body and h.get(topics.H_MQTT_TOPIC) == case["topic"]]

    def all_dead_letters_read() -> bool:
        dead.poll(1.0)
        return all(matching(c) for c in dead_cases)

    wait_for(all_dead_letters_read, 60, what="the vectors' dead letters")
    dead.poll(3.0)  # anything duplicated would arrive meanwhile
    for case in dead_cases:
        found = matching(case)
        assert len(found) == 1, (case["topic"], found)
        headers = found[0]
        assert headers[topics.H_REASON] == case["expect_dead_letter"]
        assert headers[topics.H_SOURCE_TOPIC] == topics.RAW
        assert int(headers[topics.H_SOURCE_OFFSET]) >= 0 and int(headers[topics.H_SOURCE_PARTITION]) >= 0
        assert headers[topics.H_DETAIL]
    dead.close()
    assert all(pipeline.alive().values()), pipeline.alive()
    for daemon in pipeline.daemons:
        assert daemon.healthz()[0] == 200, daemon.name
