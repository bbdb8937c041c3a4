"""readings_hourly and readings_daily as time-partitioned assets: a run recomputes exactly its window."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import dagster as dg

from f2_platform.defs.aggregates.maintenance import maintain_window
from f2_platform.defs.asset_keys import DECODED_DATA, READINGS_DAILY, READINGS_HOURLY
from f2_platform.defs.resources import TimescaleResource
from f2_platform.partitions import daily_partitions, hourly_partitions
from f2_platform.timeseries import aggregate_sql as q

GROUP = "aggregates"
COLUMN_SCHEMA = dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in q.COLUMNS])
_DESCRIPTION = (
    "{level} avg, min, max, count, first, last and sample stddev of every (device_id, datapoint_id), by UTC "
    "{unit}. Full edition: a continuous aggregate{built_on} with a real-time view; Apache edition: a rollup "
    "hypertable with the same columns and values. Materializing a partition recomputes exactly its window."
)


def _metadata(spec: q.AggregateSpec) -> dict[str, object]:
    return {"dagster/table_name": spec.name, "dagster/column_schema": COLUMN_SCHEMA}


@dg.asset(
    key=READINGS_HOURLY,
    deps=[DECODED_DATA],
    partitions_def=hourly_partitions,
    # A range backfill is one run (from the UI, or `dagster asset materialize --partition-range` on the
    # CLI, which requires it); the run still commits one day at a time (maintenance.py).
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"timescaledb", "sql"},
    description=_DESCRIPTION.format(level="Hourly", unit="hour", built_on=" on decoded_data"),
    metadata=_metadata(q.HOURLY),
)
def readings_hourly(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    window = context.partition_time_window
    result = maintain_window(timescale, q.HOURLY, window.start, window.end)
    for note in result.notes:
        context.log.warning(note)
    return dg.MaterializeResult(metadata=result.metadata())  # type: ignore[arg-type]


@dg.asset(
    key=READINGS_DAILY,
    deps=[DECODED_DATA, READINGS_HOURLY],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"timescaledb", "sql"},
    description=_DESCRIPTION.format(level="Daily", unit="day", built_on=" on readings_hourly"),
    metadata=_metadata(q.DAILY),
)
def readings_daily(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    window = context.partition_time_window
    result = maintain_window(timescale, q.DAILY, window.start, window.end)
    for note in result.notes:
        context.log.warning(note)
    return dg.MaterializeResult(metadata=result.metadata())  # type: ignore[arg-type]
