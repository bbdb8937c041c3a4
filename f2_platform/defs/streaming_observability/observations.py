"""What the observation sensor measures, one function per system; each returns an AssetObservation."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from f2_platform.defs.asset_keys import DEADLETTER_TOPIC, DECODED_DATA
from f2_platform.defs.resources import KafkaAdminResource, TimescaleResource
from streaming.errors import REASONS
from streaming.kafka import topics
from streaming.kafka.records import header

OBSERVER_GROUP = "f2-dagster-observer"
UNKNOWN_REASON = "unknown"


@dataclass
class DeadLetterTally:
    """Dead letters counted so far: the next offset to read per partition and the totals per reason."""

    offsets: dict[int, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "counts": dict(sorted(self.counts.items())),
        }

    @staticmethod
    def from_json(data: object) -> DeadLetterTally:
        if not isinstance(data, dict):
            return DeadLetterTally()
        offsets = {int(p): int(o) for p, o in dict(data.get("offsets") or {}).items()}
        counts = {str(r): int(n) for r, n in dict(data.get("counts") or {}).items()}
        return DeadLetterTally(offsets, counts)


def lag_observation(kafka: KafkaAdminResource, key: dg.AssetKey, topic: str, group: str) -> dg.AssetObservation:
    lag = kafka.consumer_lag(group, topic)
    ends = kafka.end_offsets(topic)
    return dg.AssetObservation(
        asset_key=key,
        metadata={
            "consumer_group": group,
            "consumer_lag": sum(lag.values()),
            "consumer_lag_by_partition": dg.MetadataValue.json({str(p): n for p, n in sorted(lag.items())}),
            "end_offsets_total": sum(ends.values()),
            "partitions": len(ends),
        },
    )


def tally_dead_letters(
    kafka: KafkaAdminResource, previous: DeadLetterTally, max_records: int = 200_000, budget_s: float = 15.0
) -> tuple[DeadLetterTally, dict[str, int]]:
    """Reads the dead letters written since `previous` and returns the new tally and the new counts.

    Only records past the previous offsets are read, so each tick costs what arrived since the last one;
    a tick that hits its budget resumes where it stopped.
    """
    ends = kafka.end_offsets(topics.DEADLETTER)
    offsets = dict(previous.offsets)
    new: dict[str, int] = {}
    pending = {p: end for p, end in ends.items() if offsets.get(p, 0) < end}
    if pending:
        assigned = sorted(pending)
        with kafka.consumer(OBSERVER_GROUP) as consumer:
            consumer.assign([TopicPartition(topics.DEADLETTER, p, offsets.get(p, OFFSET_BEGINNING)) for p in assigned])
            deadline = time.monotonic() + budget_s
            read = 0
            while pending and read < max_records and time.monotonic() < deadline:
                for message in consumer.consume(1000, timeout=0.5):
                    if message.error() is not None:
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition is None or offset is None:
                        continue
                    reason = header(message.headers(), topics.H_REASON) or UNKNOWN_REASON
                    new[reason] = new.get(reason, 0) + 1
                    offsets[partition] = offset + 1
                    read += 1
                # The position, not the last record, says when a partition is done: a transaction's
                # commit marker can sit between the last record and the end.
                for tp in consumer.position([TopicPartition(topics.DEADLETTER, p) for p in list(pending)]):
                    if tp.offset >= 0:
                        offsets[tp.partition] = max(offsets.get(tp.partition, 0), tp.offset)
                    if offsets.get(tp.partition, -1) >= pending[tp.partition]:
                        del pending[tp.partition]
    counts = dict(previous.counts)
    for reason, n in new.items():
        counts[reason] = counts.get(reason, 0) + n
    return DeadLetterTally(offsets, counts), new


def dead_letter_observation(tally: DeadLetterTally, new: dict[str, int]) -> dg.AssetObservation:
    metadata: dict[str, object] = {
        "dead_letters_total": sum(tally.counts.values()),
        "dead_letters_new": sum(new.values()),
        "dead_letters_by_reason": dg.MetadataValue.json(dict(sorted(tally.counts.items()))),
    }
    # One number per reason class, so the UI plots each over time.
    for reason in (*REASONS, UNKNOWN_REASON):
        metadata[f"reason/{reason}"] = tally.counts.get(reason, 0)
    return dg.AssetObservation(asset_key=DEADLETTER_TOPIC, metadata=metadata)  # type: ignore[arg-type]


TABLE_STATS = """
SELECT (SELECT max("timestamp") FROM decoded_data) AS newest_reading,
       (SELECT approximate_row_count('decoded_data')) AS rows_estimate,
       (SELECT count(*) FROM timescaledb_information.chunks
         WHERE hypertable_schema = current_schema() AND hypertable_name = 'decoded_data') AS chunks,
       (SELECT hypertable_size('decoded_data')) AS bytes,
       now() AS observed_at
"""


def table_observation(timescale: TimescaleResource) -> dg.AssetObservation:
    row = timescale.fetch_one(TABLE_STATS) or {}
    newest: datetime | None = row.get("newest_reading")
    observed_at: datetime = row.get("observed_at") or datetime.now(UTC)
    metadata: dict[str, object] = {
        # Row counts come from the planner statistics: exact counting a large hypertable every minute
        # would cost more than the ingest it observes.
        "rows_estimate": int(row.get("rows_estimate") or 0),
        "chunks": int(row.get("chunks") or 0),
        "bytes": int(row.get("bytes") or 0),
    }
    if newest is not None:
        metadata["newest_reading"] = dg.MetadataValue.timestamp(newest)
        metadata["newest_reading_age_s"] = round((observed_at - newest).total_seconds(), 3)
    return dg.AssetObservation(asset_key=DECODED_DATA, metadata=metadata)  # type: ignore[arg-type]


def parse_cursor(cursor: str | None) -> DeadLetterTally:
    if not cursor:
        return DeadLetterTally()
    try:
        return DeadLetterTally.from_json(json.loads(cursor).get("deadletter"))
    except (ValueError, AttributeError, TypeError):
        return DeadLetterTally()


def dump_cursor(tally: DeadLetterTally) -> str:
    return json.dumps({"deadletter": tally.to_json()}, sort_keys=True)
