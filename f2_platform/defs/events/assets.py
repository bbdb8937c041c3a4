"""events_hourly and events_daily as time-partitioned assets: a run recomputes exactly its window of both
tables of its level (event_counts_*, event_activity_*)."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import dagster as dg

from f2_platform.defs.asset_keys import (
    COMPONENT_STATES,
    CONTROLLER_PRESENCE,
    DEVICE_EVENTS,
    EVENTS_DAILY,
    EVENTS_HOURLY,
)
from f2_platform.defs.events.maintenance import maintain_event_range
from f2_platform.defs.resources import TimescaleResource
from f2_platform.partitions import daily_partitions, hourly_partitions
from f2_platform.timeseries import event_aggregate_sql as q

GROUP = "events"
ACTIVITY_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("bucket", "timestamptz"),
        dg.TableColumn("controller_mac", "text"),
        dg.TableColumn("connector", "smallint"),
        dg.TableColumn("component", "text"),
        dg.TableColumn("controller_id", "int"),
        dg.TableColumn("device_id", "int"),
        dg.TableColumn("events", "int", description="every event of the component"),
        dg.TableColumn("access_attempts", "int", description="access events (reader scans)"),
        dg.TableColumn("distinct_credentials", "int", description="distinct credential fingerprints scanned"),
        dg.TableColumn("open_count", "int", description="door: changes to open"),
        dg.TableColumn("open_s", "double precision", description="door: seconds open inside the bucket"),
        dg.TableColumn("longest_open_s", "double precision", description="door: longest open run inside it (s)"),
        dg.TableColumn("outages", "int", description="controller: changes to offline"),
        dg.TableColumn("outage_s", "double precision", description="controller: seconds offline inside the bucket"),
    ]
)
_DESCRIPTION = (
    "Per UTC {unit}, controller and component: events per kind and state ({counts}) and the component's "
    "activity ({activity}): access attempts and distinct credential fingerprints, door openings, time open and "
    "the longest open run, presence outages and time offline (durations cut at the {unit}'s bounds). "
    "Materializing a partition recomputes exactly its window (upsert; same SQL on both editions)."
)


def _run(context: dg.AssetExecutionContext, timescale: TimescaleResource, level: q.EventLevel) -> dg.MaterializeResult:
    window = context.partition_time_window
    result = maintain_event_range(timescale, level, window.start, window.end)
    for note in result.notes:
        context.log.warning(note)
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    key=EVENTS_HOURLY,
    deps=[DEVICE_EVENTS, COMPONENT_STATES, CONTROLLER_PRESENCE],
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"timescaledb", "sql"},
    description=_DESCRIPTION.format(unit="hour", counts=q.HOURLY.counts_table, activity=q.HOURLY.activity_table),
    metadata={"dagster/table_name": q.HOURLY.activity_table, "dagster/column_schema": ACTIVITY_SCHEMA},
)
def events_hourly(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    return _run(context, timescale, q.HOURLY)


@dg.asset(
    key=EVENTS_DAILY,
    deps=[DEVICE_EVENTS, COMPONENT_STATES, CONTROLLER_PRESENCE],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"timescaledb", "sql"},
    description=_DESCRIPTION.format(unit="day", counts=q.DAILY.counts_table, activity=q.DAILY.activity_table),
    metadata={"dagster/table_name": q.DAILY.activity_table, "dagster/column_schema": ACTIVITY_SCHEMA},
)
def events_daily(context: dg.AssetExecutionContext, timescale: TimescaleResource) -> dg.MaterializeResult:
    return _run(context, timescale, q.DAILY)
