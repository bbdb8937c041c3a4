"""Hourly and daily aggregates per (device, datapoint): specifications and the SQL that maintains them.

Two implementations with the same names, columns and values (the contract the data-quality models build on):
- Apache edition: `readings_hourly` and `readings_daily` are rollup hypertables (sql/timeseries/0003) that
  a partition run recomputes from `decoded_data` with DELETE + INSERT over exactly its window;
- full edition: they are continuous aggregates (daily built on hourly) with real-time views, refreshed
  over the window with `refresh_continuous_aggregate`.

Late readings are logged in `aggregate_invalidations` (sql/timeseries/0002); a run consumes the entries it
has seen, so the late-data sensor only ever finds windows that changed after their last materialization.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg import sql

RAW_TABLE = "decoded_data"
INVALIDATIONS_TABLE = "aggregate_invalidations"

# The contract shared with the data-quality models: names and types, in this order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("bucket", "timestamptz"),
    ("device_id", "int"),
    ("datapoint_id", "int"),
    ("avg_value", "double precision"),
    ("min_value", "double precision"),
    ("max_value", "double precision"),
    ("sample_count", "bigint"),
    ("first_value", "double precision"),
    ("last_value", "double precision"),
    ("stddev_value", "double precision"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)


@dataclass(frozen=True)
class AggregateSpec:
    name: str
    bucket: timedelta
    # What the native continuous aggregate reads: the daily one is built on the hourly one.
    native_source: str
    # Longest window one transaction recomputes on the Apache path: bounded locks and WAL per commit.
    step: timedelta

    @property
    def bucket_sql(self) -> sql.Composable:
        seconds = int(self.bucket.total_seconds())
        text = f"{seconds // 86400} days" if seconds % 86400 == 0 else f"{seconds // 3600} hours"
        return sql.SQL("INTERVAL {}").format(sql.Literal(text))

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.name)


HOURLY = AggregateSpec("readings_hourly", timedelta(hours=1), RAW_TABLE, timedelta(days=1))
DAILY = AggregateSpec("readings_daily", timedelta(days=1), HOURLY.name, timedelta(days=7))
AGGREGATES: tuple[AggregateSpec, ...] = (HOURLY, DAILY)
BY_NAME: dict[str, AggregateSpec] = {spec.name: spec for spec in AGGREGATES}

# --- Apache edition: Dagster-maintained rollups ---------------------------------------------------------


def rollup_delete(spec: AggregateSpec) -> sql.Composed:
    return sql.SQL("DELETE FROM {table} WHERE bucket >= %(start)s AND bucket < %(end)s").format(table=spec.table)


def rollup_insert(spec: AggregateSpec) -> sql.Composed:
    """Both levels straight from the raw readings: exact values whatever state the hourly rollup is in.

    avg and stddev aggregate in timestamp order: floating-point sums depend on the order of their terms,
    and a fixed order makes recomputing the same window give bit-identical values whatever plan runs it.
    A reading without a value (NULL, only in a table adopted from the reference deployment) is no sample:
    it counts nowhere, and a bucket holding only such readings has no row.
    """
    return sql.SQL(
        "INSERT INTO {table} ({columns}) "
        'SELECT time_bucket({width}, "timestamp") AS bucket, device_id, datapoint_id, '
        'avg(value ORDER BY "timestamp"), min(value), max(value), count(*), '
        'first(value, "timestamp"), last(value, "timestamp"), stddev_samp(value ORDER BY "timestamp") '
        "FROM {raw} "
        'WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s AND value IS NOT NULL '
        "GROUP BY 1, 2, 3"
    ).format(
        table=spec.table,
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMN_NAMES)),
        width=spec.bucket_sql,
        raw=sql.Identifier(RAW_TABLE),
    )


# --- full edition: continuous aggregates ----------------------------------------------------------------

_HOURLY_CAGG = sql.SQL(
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {table} "
    "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
    'SELECT time_bucket({width}, "timestamp") AS bucket, device_id, datapoint_id, '
    "avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value, "
    "count(*) AS sample_count, "
    'first(value, "timestamp") AS first_value, last(value, "timestamp") AS last_value, '
    "stddev_samp(value) AS stddev_value "
    "FROM {source} "
    # As in rollup_insert: a reading without a value is no sample.
    "WHERE value IS NOT NULL "
    'GROUP BY time_bucket({width}, "timestamp"), device_id, datapoint_id '
    "WITH NO DATA"
)

# The daily level combines hourly rows: a count-weighted mean, and the sample variance rebuilt from each
# hour's count, mean and sample stddev: sum of squares Q = sum((n-1)*s^2 + n*mean^2), then
# var = (Q - S^2/N) / (N-1) with S = sum(n*mean), N = sum(n). NULL for a single sample, as stddev_samp.
_DAILY_CAGG = sql.SQL(
    "CREATE MATERIALIZED VIEW IF NOT EXISTS {table} "
    "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
    "SELECT time_bucket({width}, bucket) AS bucket, device_id, datapoint_id, "
    "sum(avg_value * sample_count) / sum(sample_count)::double precision AS avg_value, "
    "min(min_value) AS min_value, max(max_value) AS max_value, "
    "sum(sample_count)::bigint AS sample_count, "
    "first(first_value, bucket) AS first_value, last(last_value, bucket) AS last_value, "
    "CASE WHEN sum(sample_count) > 1 THEN sqrt(greatest(0.0, ("
    "sum((sample_count - 1) * coalesce(stddev_value * stddev_value, 0.0) "
    "+ sample_count * avg_value * avg_value)"
    " - sum(avg_value * sample_count) * sum(avg_value * sample_count) / sum(sample_count)::double precision"
    ") / (sum(sample_count) - 1)::double precision)) END AS stddev_value "
    "FROM {source} "
    "GROUP BY time_bucket({width}, bucket), device_id, datapoint_id "
    "WITH NO DATA"
)


def cagg_create(spec: AggregateSpec) -> sql.Composed:
    template = _HOURLY_CAGG if spec.native_source == RAW_TABLE else _DAILY_CAGG
    return template.format(table=spec.table, width=spec.bucket_sql, source=sql.Identifier(spec.native_source))


def cagg_realtime(spec: AggregateSpec) -> sql.Composed:
    # Real-time views: queries include readings newer than the last refresh (off by default since 2.13).
    return sql.SQL("ALTER MATERIALIZED VIEW {table} SET (timescaledb.materialized_only = false)").format(
        table=spec.table
    )


def cagg_refresh(spec: AggregateSpec) -> sql.Composed:
    # Only buckets wholly inside the window are refreshed; partition windows are whole buckets.
    return sql.SQL("CALL refresh_continuous_aggregate({name}, %(start)s::timestamptz, %(end)s::timestamptz)").format(
        name=sql.Literal(spec.name)
    )


CAGG_EXISTS = (
    "SELECT count(*) FROM timescaledb_information.continuous_aggregates "
    "WHERE view_schema = current_schema() AND view_name = %(name)s"
)

# --- both editions --------------------------------------------------------------------------------------

WINDOW_SUMMARY = sql.SQL(
    "SELECT count(*), count(DISTINCT device_id), coalesce(sum(sample_count), 0) "
    "FROM {table} WHERE bucket >= %(start)s AND bucket < %(end)s"
)


def window_summary(spec: AggregateSpec) -> sql.Composed:
    return WINDOW_SUMMARY.format(table=spec.table)


INVALIDATIONS_IN_WINDOW = (
    "SELECT bucket, xact::text FROM aggregate_invalidations "
    "WHERE aggregate = %(aggregate)s AND bucket >= %(start)s AND bucket < %(end)s"
)
CONSUME_INVALIDATIONS_IN_WINDOW = (
    "DELETE FROM aggregate_invalidations WHERE aggregate = %(aggregate)s AND bucket >= %(start)s AND bucket < %(end)s"
)
CONSUME_INVALIDATIONS_SEEN = (
    "DELETE FROM aggregate_invalidations "
    "WHERE aggregate = %(aggregate)s AND bucket >= %(start)s AND bucket < %(end)s "
    "AND xact::text = ANY(%(xacts)s)"
)
# Per window still to recompute: a digest of the transactions that wrote into it, so the sensor asks again
# exactly when a new transaction wrote after its last request.
PENDING_INVALIDATIONS = (
    "SELECT aggregate, bucket, count(*), md5(string_agg(xact::text, ',' ORDER BY xact)) "
    "FROM aggregate_invalidations GROUP BY aggregate, bucket ORDER BY aggregate, bucket"
)
RAW_RETENTION_WATERMARK = "SELECT dropped_before FROM f2_retention_watermarks WHERE hypertable = %(hypertable)s"
