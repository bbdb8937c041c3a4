"""Reader credentials never pass the bridge in clear (issue 17, item 2), on the real stack: scans published over
MQTT reach f2.raw only as keyed fingerprints, which this test computes itself from the stack's secret file,
and the tokens appear byte for byte nowhere in f2.raw, the dead letters, the logs or the daemons' metrics.
`f2 credentials fingerprint` gives an operator the same fingerprint. The simulator's readers, scanning a pool
of cards through the whole platform, leave their tokens in no topic, table, log or metric, and the CLI's query
finds exactly each card's scans."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from f2_platform.stack.manager import Stack
from simulator.reconcile import ledger_events, wait_events_reconciled
from streaming.kafka import topics
from streaming.settings import ConnectionSettings
from tests.pipeline import Pipeline
from tests.realtime import TopicReader, publish, simulate, wait_for

pytestmark = pytest.mark.integration

F2 = str(Path(sys.executable).parent / "f2")
TS = "2026-02-03 04:05:06.070809"


def stack_secret(stack: Stack) -> bytes:
    """The secret as `f2 stack up` generated it: read from its file, not through the platform's settings."""
    return (stack.layout.secrets_dir / "credential-secret").read_text().strip().encode()


def fingerprint(secret: bytes, token: bytes) -> str:
    return hmac.new(secret, token, hashlib.sha256).hexdigest()


def credential_json(secret: bytes, token: bytes) -> str:
    return f'{{"fingerprint":"{fingerprint(secret, token)}","key_id":"k1","length":{len(token)}}}'


def redacted_counts(pipeline: Pipeline) -> dict[str, float]:
    text = pipeline.get("bridge-0").metrics()
    assert text is not None, "the bridge serves no metrics"
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "f2_credentials_redacted_total":
                assert sample.labels["daemon"] == "bridge"
                counts[sample.labels["outcome"]] = sample.value
    return counts


def all_metrics(pipeline: Pipeline) -> str:
    texts = []
    for daemon in pipeline.daemons:
        if daemon.metrics_port is not None:
            with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5) as reply:
                texts.append(reply.read().decode())
    return "\n".join(texts)


def test_reader_tokens_reach_kafka_only_as_fingerprints(migrated, stack, pipeline) -> None:
    secret = stack_secret(stack)
    assert len(secret) >= 16
    mac = f"cafe{uuid.uuid4().hex[:8]}"
    qr = f"QR-{uuid.uuid4().hex}".encode()
    nfc = f"NFC-{uuid.uuid4().hex}".encode()
    binary = b"\x04\xa1" + nfc  # a binary token: its literal escapes the first two bytes
    reader = f"tele/f2-{mac}/access-control-mode/J1/reader-1"
    upper = f"tele/f2-{mac}/access-control-mode/J2/READER-1"
    sensor = f"tele/f2-{mac}/sensor-mode/J1/sensor-1"
    not_json = b"not json " + qr
    unclosed = json.dumps({"timestamp": TS, "data": f"b'{qr.decode()}", "note": qr.decode()}).encode()
    sensor_payload = json.dumps({"timestamp": TS, "data": "01 03 06 09 30 11 9E 02 64 05 B1"}).encode()
    published = [
        (reader, json.dumps({"timestamp": TS, "data": f"b'{qr.decode()}'", "extra": qr.decode()}).encode()),
        (reader, json.dumps({"timestamp": TS, "data": "b'\\x04\\xa1" + nfc.decode() + "'"}).encode()),
        (reader, json.dumps({"timestamp": TS, "data": "b'\\x02\\x02\\x01\\x00\\x00\\x00\\x03\\x03'"}).encode()),
        (reader, not_json),
        (reader, unclosed),
        (sensor, sensor_payload),
        # Upper case: outside the topic grammar, still a reader's. Last, so that its dead letter means the
        # processor has read every message before it (one MAC: one partition, in order).
        (upper, json.dumps({"timestamp": TS, "data": f"b'{qr.decode()}'"}).encode()),
    ]
    # What the bridge must write for each, spelled out here.
    expected = [
        (reader, f'{{"timestamp":"{TS}","credential":{credential_json(secret, qr)}}}'.encode(), "k1"),
        (reader, f'{{"timestamp":"{TS}","credential":{credential_json(secret, binary)}}}'.encode(), "k1"),
        (reader, f'{{"timestamp":"{TS}","indicator":"02 02 01 00 00 00 03 03"}}'.encode(), "k1"),
        (
            reader,
            b'{"unparsed":"payload is not valid JSON in UTF-8 (error at character 0)","credential":'
            + credential_json(secret, not_json).encode()
            + b"}",
            "k1",
        ),
        (
            reader,
            f'{{"timestamp":"{TS}","unparsed":"field \'data\' is not closed by its quote; expected a Python bytes '
            f'literal such as b\'...\' or b\\"...\\"","credential":{credential_json(secret, unclosed)}}}'.encode(),
            "k1",
        ),
        (sensor, sensor_payload, None),
        (upper, f'{{"timestamp":"{TS}","credential":{credential_json(secret, qr)}}}'.encode(), "k1"),
    ]
    before = redacted_counts(pipeline)
    raw = TopicReader(migrated, topics.RAW)
    dead = TopicReader(migrated, topics.DEADLETTER)
    try:
        publish(migrated, published)

        def ours() -> list[tuple[str, bytes | None, str | None]]:
            return [
                (h[topics.H_MQTT_TOPIC], v, h.get(topics.H_REDACTED)) for k, v, h in raw.records if k == mac.encode()
            ]

        def arrived() -> bool:
            raw.poll(0.5)
            return len(ours()) >= len(published)

        wait_for(arrived, 30, what="the records in f2.raw")
        assert ours() == expected
        wait_for(
            lambda: any(h.get(topics.H_MQTT_TOPIC) == upper for _, _, h in dead.poll(0.5)),
            60,
            what="the dead letter of the upper-case reader topic",
        )
        raw.poll(1.0)
        dead.poll(1.0)
        after = redacted_counts(pipeline)
        assert {o: after[o] - before.get(o, 0.0) for o in after} == {"token": 3, "indicator": 1, "unparsed": 2}

        # Byte for byte, nowhere: every record read from f2.raw and f2.deadletter (keys, values, headers), the
        # logs of the stack's services and of the daemons, and the daemons' metrics.
        tokens = (qr, nfc, binary)
        for topic, reader_records in ((topics.RAW, raw.records), (topics.DEADLETTER, dead.records)):
            for key, value, headers in reader_records:
                blob = (key or b"") + (value or b"") + json.dumps(headers).encode()
                for token in tokens:
                    assert token not in blob, f"a token is in {topic}: {headers}"
        logs = [*stack.layout.logs.glob("*.log"), *(d.log_path for d in pipeline.daemons)]
        for log in logs:
            content = log.read_bytes()
            for token in tokens:
                assert token not in content, f"a token is in {log}"
        metrics = all_metrics(pipeline).encode()
        for token in tokens:
            assert token not in metrics, "a token is in the daemons' metrics"
        # The fingerprints, on the other hand, are in f2.raw.
        raw_values = b"".join(v or b"" for _, v, _ in raw.records)
        assert fingerprint(secret, qr).encode() in raw_values
        assert fingerprint(secret, binary).encode() in raw_values
    finally:
        raw.close()
        dead.close()


def run_fingerprint(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [F2, "credentials", "fingerprint", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_f2_credentials_fingerprint_gives_the_bridges_fingerprint(stack, stack_env) -> None:
    secret = stack_secret(stack)
    card = f"CARD-{uuid.uuid4().hex}"
    result = run_fingerprint(stack_env, card)
    assert result.returncode == 0, result.stderr
    assert f"k1 (current): {fingerprint(secret, card.encode())}" in result.stdout
    assert f"credential_fingerprint IN ('{fingerprint(secret, card.encode())}')" in result.stdout
    assert "FROM device_events" in result.stdout
    # From standard input (kept out of the process list), and a binary token in hex.
    piped = run_fingerprint(stack_env, "-", stdin=card + "\n")
    assert piped.stdout == result.stdout
    binary = run_fingerprint(stack_env, "--hex", "04 a1 ff 00")
    assert f"k1 (current): {fingerprint(secret, bytes([4, 0xA1, 0xFF, 0]))}" in binary.stdout


def test_f2_credentials_fingerprint_under_previous_keys(stack, stack_env) -> None:
    secret = stack_secret(stack)
    env = {**stack_env, "F2_CREDENTIAL_PREVIOUS_KEYS": "k0:an-older-secret-of-the-test"}
    result = run_fingerprint(env, "CARD-1")
    assert result.returncode == 0, result.stderr
    current = fingerprint(secret, b"CARD-1")
    older = fingerprint(b"an-older-secret-of-the-test", b"CARD-1")
    assert f"k1 (current): {current}\nk0 (previous): {older}\n" in result.stdout
    assert f"IN ('{current}', '{older}')" in result.stdout
    assert "an-older-secret" not in result.stdout


def test_f2_credentials_fingerprint_refuses_without_a_secret(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2_")}
    env["F2_STATE_DIR"] = str(tmp_path)  # no local stack there to fall back to
    result = run_fingerprint(env, "CARD-1")
    assert result.returncode == 1
    assert "F2_CREDENTIAL_SECRET is not set" in result.stderr
    bad_hex = run_fingerprint({**env, "F2_CREDENTIAL_SECRET": "x" * 16}, "--hex", "0g-CARD")
    assert bad_hex.returncode == 1
    assert "--hex: the token is not hexadecimal byte pairs" in bad_hex.stderr
    assert "CARD" not in bad_hex.stderr


# ------------------------------------------------------------------ simulated scans through the whole platform


def topic_bytes(conn: ConnectionSettings) -> dict[str, bytes]:
    """Every record of every topic but Kafka's internal ones (keys, values, headers), from the beginning, aborted
    transactions' records included (read_uncommitted): what the brokers hold."""
    consumer = Consumer(
        {
            **conn.kafka_config(),
            "group.id": f"test-scan-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    out: dict[str, bytes] = {}
    try:
        for name, meta in consumer.list_topics(timeout=10).topics.items():
            if name.startswith("__"):
                continue
            ends, parts = {}, []
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > low:
                    ends[p] = high
                    parts.append(TopicPartition(name, p, low))
            chunks: list[bytes] = []
            if parts:
                consumer.assign(parts)
                deadline = time.monotonic() + 120
                while not at_end(consumer, parts, ends):
                    assert time.monotonic() < deadline, f"could not read {name} to its end"
                    for m in consumer.consume(5000, 0.5):
                        if m.error() is None:
                            chunks += [m.key() or b"", m.value() or b""]
                            chunks += [k.encode() + (v or b"") for k, v in m.headers() or []]
                consumer.unassign()
            out[name] = b"\n".join(chunks)
    finally:
        consumer.close()
    return out


def at_end(consumer: Consumer, parts: list[TopicPartition], ends: dict[int, int]) -> bool:
    # Positions, not the last record's offset: transaction markers take a topic's last offsets.
    return all(tp.offset >= ends[tp.partition] for tp in consumer.position(parts))


def table_bytes(dsn: str) -> dict[str, bytes]:
    """Every table of the database (TimescaleDB's chunks and catalog included), as COPY text."""
    out: dict[str, bytes] = {}
    with psycopg.connect(dsn) as db:
        tables = db.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            name = sql.Identifier(schema, table)
            query = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT").format(name)
            with db.cursor() as cur, cur.copy(query) as copy:
                out[f"{schema}.{table}"] = b"".join(bytes(data) for data in copy)
    return out


@pytest.mark.slow
def test_scanned_cards_are_stored_only_as_fingerprints_and_found_by_the_cli(
    migrated, stack, stack_env, pipeline, tmp_path
) -> None:
    secret = stack_secret(stack)
    ledger = tmp_path / "ledger.jsonl"
    seed = random.randrange(10**6, 10**9)  # the cards are the seed's: no other run scanned them
    env = {**stack_env, "F2_SIMULATOR_TRANSPORT": "internal"}
    proc = simulate(
        env, "--interval", "0.05", "--count", "1500", "--ledger", str(ledger), "--seed", str(seed),
        "--event-activity", "1", "--cards", "4",
    )  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()[-2000:]

    # The scans, from what the simulator published: each access event with the token its payload carried.
    scans: dict[bytes, list[tuple[str, str, str]]] = {}
    with open(ledger) as fh:
        for line in fh:
            entry = json.loads(line)
            for e in entry["events"]:
                if e["kind"] == "access":
                    token = ast.literal_eval(json.loads(entry["payload"])["data"])
                    assert e["credential_fingerprint"] == fingerprint(secret, token)
                    scans.setdefault(token, []).append((e["time"], e["controller_mac"], e["component"]))
    events = ledger_events([ledger])
    report = wait_events_reconciled(events, migrated.timeseries_dsn, 120)
    assert report.ok, report.detail
    qr = max((t for t in scans if t.startswith(b"F2-QR-")), key=lambda t: len(scans[t]))
    nfc = max((t for t in scans if t.startswith(b"\x04")), key=lambda t: len(scans[t]))
    assert len(scans[qr]) >= 2 and len(scans[nfc]) >= 2, "the readers scanned the site's cards more than once"

    # Byte for byte, nowhere: neither the tokens' bytes nor the text of the literals that carried them.
    needles = [n for token in scans for n in (token, repr(token).encode())]
    places = {f"topic {k}": v for k, v in topic_bytes(migrated).items()}
    places |= {f"table {k}": v for k, v in table_bytes(migrated.timeseries_dsn).items()}
    logs = [*stack.layout.logs.glob("*.log"), *(d.log_path for d in pipeline.daemons)]
    places |= {f"log {log}": log.read_bytes() for log in logs}
    places["metrics"] = all_metrics(pipeline).encode()
    assert "topic f2.events" in places and "table public.device_events" in places
    for where, blob in places.items():
        for needle in needles:
            assert needle not in blob, f"a scanned token is in {where}"
    # The fingerprints are where the events are.
    for token in (qr, nfc):
        assert fingerprint(secret, token).encode() in places["table public.device_events"]
        assert fingerprint(secret, token).encode() in places["topic f2.raw"]
        assert fingerprint(secret, token).encode() in places["topic f2.events"]

    # The operator's way: the CLI's fingerprint, and its SQL finds exactly the card's scans.
    for token, args in ((qr, [qr.decode()]), (nfc, ["--hex", nfc.hex(" ")])):
        result = run_fingerprint(stack_env, *args)
        assert result.returncode == 0, result.stderr
        assert f"k1 (current): {fingerprint(secret, token)}" in result.stdout
        query = re.search(r"SELECT .*?;", result.stdout, re.DOTALL)
        assert query is not None, result.stdout
        with psycopg.connect(migrated.timeseries_dsn) as db:
            found = db.execute(query.group(0)).fetchall()
        got = sorted((rfc3339_of(row[0]), row[1], row[3]) for row in found)
        assert got == sorted(scans[token])
        assert {(row[4], row[8]) for row in found} == {("access", len(token))}


def rfc3339_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
