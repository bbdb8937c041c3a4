"""Reference figures on the same services, in the same run, so every result is also a ratio.

- COPY + upsert: rows/s the database takes through COPY into the sink's staging table and one upsert into
  decoded_data (the sink's fallback statement) in batches of the sink's size, with no Kafka and no per-row
  Python work (the client writes COPY binary data, as the sink does). A second figure runs the sink's whole
  write transaction (`streaming.sink.writer.write_batch`: insert, upsert only when keys exist, latest_values)
  the same way.
- Naive stage: the system the platform replaces, on the platform's decoder: per message one Redis GET of
  the controller's topology (and its JSON parse), decoding, and `executemany` upserts of 1,000 rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import redis

from bench.common import COPY_LATEST_REFERENCE_DEVICES, COPY_REFERENCE_DEVICES, Run
from bench.fleet import Portfolio, Stamper, bench_macs, payload
from bench.model import Measure, StageResult
from streaming.decoding.message import decode_message
from streaming.decoding.payload import parse_payload
from streaming.decoding.topology import ControllerTopology
from streaming.decoding.topology_store import RegistryStore
from streaming.mqtt.topic import parse_topic
from streaming.sink.sql import COPY_BINARY_SQL, STAGING_DDL, UPSERT_SQL
from streaming.sink.writer import write_batch

NAIVE_UPSERT_SQL = (
    'INSERT INTO decoded_data ("timestamp", device_id, datapoint_id, value) VALUES (%s, %s, %s, %s) '
    'ON CONFLICT ("timestamp", device_id, datapoint_id) DO UPDATE SET value = EXCLUDED.value'
)
# Inside the key space the processor's Redis user may use (its ACL allows f2:topology:*).
NAIVE_KEY = "f2:topology:bench-naive:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> float:
        return float(self.value)


def _timed(run: Run, result: StageResult, series: str, step: Callable[[], int]) -> tuple[float, float, float]:
    """Run `body_step()` (one batch, returns rows done) through warm-up and window; (start, end, rate)."""
    cfg = run.config
    m = run.monitor()
    done = _Counter()
    m.counter(series, done)
    m.start()
    try:
        warm_end = time.monotonic() + cfg.warmup_s
        while time.monotonic() < warm_end:
            done.value += step()
        ws = m.sample().t
        we = ws + cfg.duration_s
        while m.now() < we:
            done.value += step()
        end = m.sample().t
    finally:
        m.stop()
    rate = m.rate(series, ws, end)
    # The references run one after the other: one time axis for the chart.
    offset = max((points[-1][0] for points in result.timeseries.values() if points), default=0.0)
    result.phases[series.removesuffix(" rows/s")] = (ws + offset, end + offset)
    for usage in run.usages(m, ws, end, rate * (end - ws)):
        usage.name = f"{series.removesuffix(' rows/s')}: {usage.name}"
        result.processes.append(usage)
    result.timeseries[series] = [(t + offset, v) for t, v in m.series(series)]
    return ws, end, rate


def copy_reference(run: Run, result: StageResult, with_latest: bool) -> float:
    portfolio = Portfolio.starting_soon(COPY_LATEST_REFERENCE_DEVICES if with_latest else COPY_REFERENCE_DEVICES)
    frames_per_batch = max(1, run.config.reference_batch_rows // 3)
    position = 0
    with psycopg.connect(run.conn.timeseries_dsn, connect_timeout=10) as db:
        db.execute(STAGING_DDL)
        db.commit()

        def batch() -> int:
            nonlocal position
            data, rows = portfolio.copy_binary(position, frames_per_batch)
            position += frames_per_batch
            if with_latest:
                write_batch(db, data, binary=True)
                return rows
            with db.transaction():
                with db.cursor() as cur, cur.copy(COPY_BINARY_SQL) as copy:
                    copy.write(data)
                db.execute(UPSERT_SQL)
            return rows

        name = "sink transaction rows/s" if with_latest else "COPY+upsert rows/s"
        _, _, rate = _timed(run, result, name, batch)
    return rate


def naive_reference(run: Run, result: StageResult) -> tuple[float, float, dict[str, float]]:
    """(frames/s, rows/s, seconds per part) of the naive stage."""
    conn = run.conn
    eps = run.endpoints
    r = redis.Redis.from_url(conn.redis_url, socket_timeout=5)
    store = RegistryStore(conn.registry_dsn)
    try:
        for mac in bench_macs(run.config.controllers):
            _, topology = store.load(mac)
            if topology is not None:
                r.set(NAIVE_KEY + mac, json.dumps(topology.to_json()), ex=3600)
    finally:
        store.close()
    stamper = Stamper()
    # A day ahead: never inside the end-to-end windows that reconcile the same devices, never "late data".
    base = int((time.time() + 86400) * 1_000_000)
    parts = {"redis": 0.0, "decode": 0.0, "database": 0.0, "frames": 0.0, "rows": 0.0}
    k = 0
    rows: list[tuple[datetime, int, int, float]] = []
    batch_rows = run.config.naive_batch_rows
    n_eps = len(eps)
    with psycopg.connect(conn.timeseries_dsn, connect_timeout=10) as db:

        def batch() -> int:
            nonlocal k
            clock = time.perf_counter
            while len(rows) < batch_rows:
                ep = eps[k % n_eps]
                raw = payload(stamper.device_time(base + k), ep.variants[(k // n_eps) % len(ep.variants)][0])
                k += 1
                t0 = clock()
                topic = parse_topic(ep.topic)
                cached = r.get(NAIVE_KEY + topic.mac)
                t1 = clock()
                topology = ControllerTopology.from_json(json.loads(cached)) if cached else None
                if topology is None:
                    raise RuntimeError(f"topology of {topic.mac} missing in Redis")
                readings = decode_message(
                    topic, parse_payload(raw, 65536), topology.resolve(topic.connector, topic.position)
                )
                rows.extend(
                    (_EPOCH + timedelta(microseconds=x.timestamp_us), x.device_id, x.datapoint_id, x.value)
                    for x in readings
                )
                t2 = clock()
                parts["redis"] += t1 - t0
                parts["decode"] += t2 - t1
                parts["frames"] += 1
            t3 = time.perf_counter()
            with db.cursor() as cur:
                cur.executemany(NAIVE_UPSERT_SQL, rows[:batch_rows])
            db.commit()
            parts["database"] += time.perf_counter() - t3
            parts["rows"] += batch_rows
            del rows[:batch_rows]
            return batch_rows

        _, _, rows_rate = _timed(run, result, "naive rows/s", batch)
    r.close()
    frames_rate = rows_rate / run.readings_per_frame
    return frames_rate, rows_rate, parts


def references_stage(run: Run) -> StageResult:
    result = StageResult("references", "rows", run.config.duration_s)
    copy_rate = copy_reference(run, result, with_latest=False)
    copy_latest_rate = copy_reference(run, result, with_latest=True)
    frames_rate, rows_rate, parts = naive_reference(run, result)
    run.reference.update(
        {
            "copy_upsert_rows_per_s": copy_rate,
            "sink_transaction_rows_per_s": copy_latest_rate,
            "naive_frames_per_s": frames_rate,
            "naive_rows_per_s": rows_rate,
        }
    )
    total = (parts["redis"] + parts["decode"] + parts["database"]) or 1.0
    result.measures += [
        Measure(
            "COPY to staging + one upsert (no Kafka)",
            copy_rate,
            "rows/s",
            note=f"batches of {run.config.reference_batch_rows:,} rows, the sink's SQL",
        ),
        Measure(
            "the sink's whole write transaction: COPY, insert (upsert if keys exist), latest_values",
            copy_latest_rate,
            "rows/s",
        ),
        Measure(
            "naive stage: Redis GET per message, executemany upserts of 1,000",
            frames_rate,
            "frames/s",
            note=f"{rows_rate:,.0f} rows/s; time in Redis {100 * parts['redis'] / total:.0f}%, decoding "
            f"{100 * parts['decode'] / total:.0f}%, executemany {100 * parts['database'] / total:.0f}%",
        ),
    ]
    if parts["redis"] > 0 and parts["database"] > 0:
        result.notes.append(
            "naive parts, each on its own: "
            f"single Redis GETs {parts['frames'] / parts['redis']:,.0f}/s, "
            f"executemany upserts {parts['rows'] / parts['database']:,.0f} rows/s"
        )
    # The same hypertable serves the later stages; the references' rows are deleted at the end of the run.
    return result
