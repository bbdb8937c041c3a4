"""Late data: windows that received readings or events after their last materialization are recomputed.

`aggregate_invalidations` holds, per aggregate window, the transactions that wrote readings (decoded_data's
triggers, timeseries migration 0005) or events (device_events' trigger, 0010: a late door or presence change
marks every window up to the component's next event) into it after it could have been aggregated; each run
deletes the entries its snapshot saw (readings_hourly/_daily, events_hourly/_daily). The sensor requests a run for
every window with entries left whose partition has been materialized (a window never materialized is the
schedule's or a backfill's business) and that is not being materialized right now (that run may or may not
see the readings; if it does not, the entries survive it and the next tick asks again).

Cursor: {aggregate: {partition key: digest of the writing transactions already requested}}. A window is
requested again only when a new transaction wrote into it, so a slow run is never requested twice.
"""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from f2_platform.defs.aggregates.schedules import readings_daily_job, readings_hourly_job
from f2_platform.defs.asset_keys import EVENTS_DAILY, EVENTS_HOURLY, READINGS_DAILY, READINGS_HOURLY
from f2_platform.defs.events.schedules import events_daily_job, events_hourly_job
from f2_platform.defs.resources import TimescaleResource
from f2_platform.environment import default_status
from f2_platform.partitions import bucket_floor, daily_partitions, hourly_partitions
from f2_platform.timeseries import aggregate_sql as q
from f2_platform.timeseries import event_aggregate_sql as eq


@dataclass(frozen=True)
class Target:
    asset: dg.AssetKey
    job: str  # the job that materializes it
    partitions: dg.TimeWindowPartitionsDefinition
    width: timedelta  # of its windows


# aggregate (its name in aggregate_invalidations) -> what recomputes its windows
_TARGETS: dict[str, Target] = {
    q.HOURLY.name: Target(READINGS_HOURLY, readings_hourly_job.name, hourly_partitions, q.HOURLY.bucket),
    q.DAILY.name: Target(READINGS_DAILY, readings_daily_job.name, daily_partitions, q.DAILY.bucket),
    eq.HOURLY.aggregate: Target(EVENTS_HOURLY, events_hourly_job.name, hourly_partitions, eq.HOURLY.bucket),
    eq.DAILY.aggregate: Target(EVENTS_DAILY, events_daily_job.name, daily_partitions, eq.DAILY.bucket),
}


@dataclass(frozen=True)
class PendingWindow:
    aggregate: str
    bucket: datetime
    writes: int
    digest: str


def parse_cursor(cursor: str | None) -> dict[str, dict[str, str]]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        return {}
    return {str(a): {str(k): str(d) for k, d in dict(keys).items()} for a, keys in dict(data).items()}


def read_pending(timescale: TimescaleResource) -> list[PendingWindow]:
    with timescale.connect() as conn:
        return [PendingWindow(str(a), b, int(n), str(d)) for a, b, n, d in conn.execute(q.PENDING_INVALIDATIONS)]


def plan_requests(
    pending: list[PendingWindow],
    previous: dict[str, dict[str, str]],
    partition_status: dict[str, dict[str, dg.AssetPartitionStatus]],
    partitions_defs: dict[str, dg.TimeWindowPartitionsDefinition],
) -> tuple[list[tuple[str, str, str]], dict[str, dict[str, str]]]:
    """Pure: which (aggregate, partition key, digest) to request, and the next cursor."""
    requests: list[tuple[str, str, str]] = []
    cursor: dict[str, dict[str, str]] = {}
    for window in pending:
        partitions_def = partitions_defs.get(window.aggregate)
        if partitions_def is None:
            continue
        key = window.bucket.astimezone(UTC).strftime(partitions_def.fmt)
        status = partition_status.get(window.aggregate, {}).get(key)
        if status != dg.AssetPartitionStatus.MATERIALIZED:
            continue  # never materialized, failed or running: not this sensor's request (see module doc)
        already = previous.get(window.aggregate, {}).get(key)
        if already != window.digest:
            requests.append((window.aggregate, key, window.digest))
        cursor.setdefault(window.aggregate, {})[key] = window.digest
    return requests, cursor


def _status_by_partition(
    instance: dg.DagsterInstance, pending: list[PendingWindow], now: datetime
) -> dict[str, dict[str, dg.AssetPartitionStatus]]:
    statuses: dict[str, dict[str, dg.AssetPartitionStatus]] = {}
    for aggregate, target in _TARGETS.items():
        partitions_def, width = target.partitions, target.width
        first, newest_end = partitions_def.start.astimezone(UTC), bucket_floor(now, width)
        # Only windows that are partitions: not before the first one, not the window still in progress.
        keys = sorted(
            {
                w.bucket.astimezone(UTC).strftime(partitions_def.fmt)
                for w in pending
                if w.aggregate == aggregate and first <= w.bucket and w.bucket + width <= newest_end
            }
        )
        if not keys:
            continue
        found = instance.get_status_by_partition(target.asset, keys, partitions_def) or {}
        statuses[aggregate] = {key: status for key, status in found.items() if status is not None}
    return statuses


@dg.sensor(
    name="aggregate_late_data_sensor",
    jobs=[readings_hourly_job, readings_daily_job, events_hourly_job, events_daily_job],
    minimum_interval_seconds=60,
    description=(
        "Requests the partitions of readings_hourly/_daily and events_hourly/_daily whose window received "
        "readings or events after their last materialization."
    ),
    default_status=default_status(dg.DefaultSensorStatus),
)
def aggregate_late_data_sensor(context: dg.SensorEvaluationContext, timescale: TimescaleResource) -> dg.SensorResult:
    pending = read_pending(timescale)
    previous = parse_cursor(context.cursor)
    partitions_defs = {aggregate: target.partitions for aggregate, target in _TARGETS.items()}
    statuses = _status_by_partition(context.instance, pending, datetime.now(UTC))
    planned, cursor = plan_requests(pending, previous, statuses, partitions_defs)
    run_requests = [
        dg.RunRequest(
            run_key=f"{aggregate}:{key}:{digest}",
            job_name=_TARGETS[aggregate].job,
            partition_key=key,
            tags={"f2/trigger": "late-data"},
        )
        for aggregate, key, digest in planned
    ]
    return dg.SensorResult(
        run_requests=run_requests,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=None if run_requests else "no window received readings or events after its last materialization",
    )
