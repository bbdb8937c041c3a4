"""The running sink with records written straight to f2.decoded: a batch the native formatter takes but the
database refuses one row of, and a batch with a record the formatter leaves to the pure path.

Either way every good record is stored, and exactly the bad ones are dead-lettered with what was wrong. And
the running processor and sink report that they use their native hot paths.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Producer

from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.realtime import TopicReader, wait_for

pytestmark = pytest.mark.integration

DEVICE = 910_001
REFUSED_VALUE = 777.25


def record(ts: datetime, datapoint: int, value: float) -> bytes:
    # The processor's exact form (docs/contracts.md), written here by hand.
    stamp = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'{{"timestamp": "{stamp}", "device_id": {DEVICE}, "datapoint_id": {datapoint}, "value": {value!r}}}'
    ).encode()


def stored(dsn: str) -> dict[int, float]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT datapoint_id, value FROM decoded_data WHERE device_id = %s", (DEVICE,)).fetchall()
    return dict(rows)


def test_rows_the_database_refuses_and_malformed_records_are_dead_lettered_alone(
    migrated: ConnectionSettings, pipeline
) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    good = {dp: dp * 1.5 for dp in range(1, 41)}
    values = [record(base + timedelta(seconds=dp), dp, value) for dp, value in good.items()]
    refused = record(base + timedelta(seconds=41), 41, REFUSED_VALUE)
    malformed = record(base, 42, 1.0).replace(b'"device_id": %d' % DEVICE, b'"device_id": "x"')
    dead = TopicReader(migrated, topics.DEADLETTER)
    producer = Producer({**migrated.kafka_config(), "acks": "all", "linger.ms": 50})

    def send(batch: list[bytes]) -> None:
        for value in batch:
            producer.produce(topics.DECODED, value=value, key=b"%d:x" % DEVICE)
        assert producer.flush(30) == 0

    def dead_letter_of(value: bytes) -> bool:
        dead.poll(1.0)
        return any(r[1] == value for r in dead.records)

    with psycopg.connect(migrated.timeseries_dsn, autocommit=True) as conn:
        # An operator's rule the sink knows nothing about: the database refuses exactly one of the rows.
        conn.execute(f"ALTER TABLE decoded_data ADD CONSTRAINT test_refuse CHECK (value <> {REFUSED_VALUE})")
        try:
            # Every record well-formed: the batch is formatted natively, and parsed only to find the refused row.
            send([*values[:10], refused, *values[10:20]])
            wait_for(lambda: dead_letter_of(refused), 60, what="the refused row's dead letter")
            # A malformed record: its batch takes the pure path.
            send([*values[20:30], malformed, *values[30:]])
            wait_for(lambda: dead_letter_of(malformed), 60, what="the malformed record's dead letter")
            wait_for(lambda: len(stored(migrated.timeseries_dsn)) >= len(good), 60, what="the good rows")
        finally:
            conn.execute("ALTER TABLE decoded_data DROP CONSTRAINT IF EXISTS test_refuse")
    assert stored(migrated.timeseries_dsn) == good
    dead.poll(2.0)  # a duplicate would arrive meanwhile
    letters = {r[1]: r[2] for r in dead.records if r[1] in (refused, malformed)}
    assert len([r for r in dead.records if r[1] in (refused, malformed)]) == 2
    assert letters[refused][topics.H_REASON] == "malformed-payload"
    assert "the database rejected the reading" in letters[refused][topics.H_DETAIL]
    assert "test_refuse" in letters[refused][topics.H_DETAIL]
    assert letters[malformed][topics.H_REASON] == "malformed-payload"
    assert "device_id 'x' is not a positive 32-bit integer" in letters[malformed][topics.H_DETAIL]
    assert all(letter[topics.H_SOURCE_TOPIC] == topics.DECODED for letter in letters.values())
    assert json.loads(refused)["value"] == REFUSED_VALUE
    dead.close()
    assert all(pipeline.alive().values()), pipeline.alive()


def test_the_running_daemons_use_the_native_hot_paths(pipeline) -> None:
    health = {d.kind: d.healthz() for d in pipeline.daemons if d.kind in ("processor", "sink")}
    assert health["processor"][0] == 200 and health["processor"][1]["native_decoder"] is True, health
    assert health["sink"][0] == 200 and health["sink"][1]["native_copy"] is True, health
