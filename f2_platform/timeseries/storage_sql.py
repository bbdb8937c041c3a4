"""SQL of the storage policies: compression settings and their drift, chunk listings, retention."""

from __future__ import annotations

import re
from dataclasses import dataclass

from f2_platform.timeseries.policy import CompressionPolicy

# A continuous aggregate stores its rows in a materialization hypertable: chunks and sizes are listed
# through it, while drop_chunks accepts the view name itself.
CHUNKS = """
WITH target AS (
    SELECT coalesce(ca.materialization_hypertable_schema, h.hypertable_schema) AS schema_name,
           coalesce(ca.materialization_hypertable_name, h.hypertable_name) AS table_name
    FROM (SELECT %(name)s::text AS name) n
    LEFT JOIN timescaledb_information.continuous_aggregates ca
           ON ca.view_schema = current_schema() AND ca.view_name = n.name
    LEFT JOIN timescaledb_information.hypertables h
           ON h.hypertable_schema = current_schema() AND h.hypertable_name = n.name
)
SELECT c.chunk_schema, c.chunk_name, c.range_start, c.range_end, c.is_compressed
FROM timescaledb_information.chunks c JOIN target t
  ON c.hypertable_schema = t.schema_name AND c.hypertable_name = t.table_name
ORDER BY c.range_start
"""
DROP_CHUNKS = "SELECT drop_chunks(%(name)s::regclass, older_than => %(cutoff)s::timestamptz)"
RECORD_WATERMARK = """
INSERT INTO f2_retention_watermarks (hypertable, dropped_before) VALUES (%(name)s, %(dropped_before)s)
ON CONFLICT (hypertable) DO UPDATE
SET dropped_before = greatest(f2_retention_watermarks.dropped_before, EXCLUDED.dropped_before),
    updated_at = now()
"""
# Windows whose readings are gone can never be recomputed: their invalidations would wait forever.
PRUNE_INVALIDATIONS = "DELETE FROM aggregate_invalidations WHERE bucket < %(before)s"
DB_NOW = "SELECT now()"

COMPRESSION_ENABLED = (
    "SELECT compression_enabled FROM timescaledb_information.hypertables "
    "WHERE hypertable_schema = current_schema() AND hypertable_name = %(name)s"
)
# hypertable_compression_settings exists from TimescaleDB 2.14: one row per compressed hypertable.
COMPRESSION_SETTINGS = (
    "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings "
    "WHERE hypertable = %(name)s::regclass"
)
# Same rule as show_chunks(older_than => cutoff): chunks that end at or before the cutoff.
COMPRESSIBLE_CHUNKS = (
    "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
    "WHERE hypertable_schema = current_schema() AND hypertable_name = %(name)s AND NOT is_compressed "
    "AND range_end <= %(cutoff)s ORDER BY range_start"
)
COMPRESS_CHUNK = "SELECT compress_chunk(%(chunk)s::regclass, if_not_compressed => true)"
COMPRESSION_STATS = (
    "SELECT coalesce(sum(before_compression_total_bytes), 0), "
    "coalesce(sum(after_compression_total_bytes), 0), "
    "coalesce(sum(number_compressed_chunks), 0) FROM hypertable_compression_stats(%(name)s::regclass)"
)
HYPERTABLE_BYTES = "SELECT hypertable_size(%(name)s::regclass)"


def enable_compression(policy: CompressionPolicy) -> str:
    from psycopg import sql

    return (
        sql.SQL(
            "ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = {segment_by}, "
            "timescaledb.compress_orderby = {order_by})"
        )
        .format(
            table=sql.Identifier(policy.hypertable),
            segment_by=sql.Literal(", ".join(policy.segment_by)),
            order_by=sql.Literal(policy.order_by),
        )
        .as_string(None)
    )


@dataclass(frozen=True)
class Drift:
    setting: str
    desired: str
    actual: str

    def as_dict(self) -> dict[str, str]:
        return {"setting": self.setting, "desired": self.desired, "actual": self.actual}


def _normalise_columns(text: str | None) -> str:
    return ", ".join(part.strip().strip('"').lower() for part in (text or "").split(",") if part.strip())


def _normalise_order(text: str | None) -> str:
    """`"timestamp" DESC NULLS FIRST` and `timestamp DESC` name the same order: compare them as equal."""
    items = []
    for part in (text or "").split(","):
        words = re.sub(r"\s+", " ", part.replace('"', "")).strip().lower()
        if not words:
            continue
        if words.endswith(" desc nulls first"):
            words = words.removesuffix(" nulls first")
        elif words.endswith(" nulls last") and " desc" not in words:
            words = words.removesuffix(" nulls last")
        words = words.removesuffix(" asc")
        items.append(words)
    return ", ".join(items)


def compression_drift(
    policy: CompressionPolicy, enabled: bool, segment_by: str | None, order_by: str | None
) -> list[Drift]:
    """Pure: what differs between the declared compression policy and what the database reports."""
    drift = []
    if not enabled:
        drift.append(Drift("compression_enabled", "true", "false"))
    desired_segment = _normalise_columns(", ".join(policy.segment_by))
    if _normalise_columns(segment_by) != desired_segment:
        drift.append(Drift("segment_by", desired_segment, _normalise_columns(segment_by) or "(none)"))
    if _normalise_order(order_by) != _normalise_order(policy.order_by):
        drift.append(Drift("order_by", _normalise_order(policy.order_by), _normalise_order(order_by) or "(none)"))
    return drift
