"""The hourly cross-hop reconciliation as a Dagster asset with its check, job and schedule.

Per hour partition (the bridges' receive hour) and controller: what the bridges counted, the raw records, the
processor's outputs and dead letters, the stored rows; the check passes when every raw record is accounted
for. Results go to reconciliation_results (Grafana, the daily report), the asset's and the check's metadata,
and a failed check alerts through the webhook. A backfill over any range of hours runs the same asset.
"""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from f2_platform.defs.asset_keys import DEADLETTER_TOPIC, DECODED_DATA, DECODED_TOPIC, RAW_TOPIC
from f2_platform.defs.reconciliation.results import counts_table, differences_table, listed_differences, write_results
from f2_platform.defs.reconciliation.sources import gather
from f2_platform.defs.resources import KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.environment import default_status
from f2_platform.partitions import bucket_floor, hourly_partitions
from f2_platform.quality import alerts
from f2_platform.reconciliation.compare import reconcile
from f2_platform.reconciliation.settings import ReconciliationSettings
from f2_platform.settings import DagsterSettings

HOURLY_RECONCILIATION = dg.AssetKey("hourly_reconciliation")
CHECK_NAME = "raw_records_accounted_for"
GROUP = "reconciliation"

_START = DagsterSettings().partitions_start
# Hours of the bridges' receive time, the current one included (end_offset=1): reconciling the hour still
# under way compares what arrived so far (the bridges' counts and f2.raw grow together); the schedule only
# asks for closed hours.
reconciliation_partitions = dg.HourlyPartitionsDefinition(
    start_date=datetime(_START.year, _START.month, _START.day), timezone="UTC", end_offset=1, fmt=hourly_partitions.fmt
)


@dg.asset(
    key=HOURLY_RECONCILIATION,
    deps=[RAW_TOPIC, DECODED_TOPIC, DEADLETTER_TOPIC, DECODED_DATA],
    partitions_def=reconciliation_partitions,
    group_name=GROUP,
    kinds={"kafka", "postgres"},
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=HOURLY_RECONCILIATION,
            description="Every raw record the bridges received in the hour is stored, dead-lettered or ignored by "
            "rule (re-decoded with the pure decoder and the registry), and f2.raw holds what the bridges counted; "
            "fails listing each difference (controller, MQTT topic, f2.raw partition and offset, what is missing).",
        )
    ],
    description="Per receive hour and controller: MQTT messages the bridges counted (f2.bridge.counts), records in "
    "f2.raw, readings and events the processor produced (f2.decoded, f2.events), dead letters by reason, rows in "
    "decoded_data and device_events. Stored in the table reconciliation_results.",
)
def hourly_reconciliation(
    context: dg.AssetExecutionContext,
    timescale: TimescaleResource,
    registry: RegistryResource,
    kafka_admin: KafkaAdminResource,
) -> dg.MaterializeResult:
    settings = ReconciliationSettings()
    hour_start = context.partition_time_window.start.astimezone(UTC)
    gathered = gather(hour_start, kafka_admin, timescale, registry, settings)
    results = reconcile(gathered.data)
    version = max(gathered.registry_versions) if gathered.registry_versions else None
    write_results(timescale, hour_start, results, version, settings.differences_listed)

    failed = [r for r in results.values() if not r.passed]
    total_differences = sum(len(r.differences) for r in results.values())
    listed = listed_differences(results, settings.differences_listed)
    hour_label = f"{hour_start.isoformat()} .. {(hour_start + timedelta(hours=1)).isoformat()}"
    summary = (
        f"{sum(r.raw_records for r in results.values())} raw record(s) of {len(results)} controller(s): "
        f"{total_differences} difference(s)"
    )
    if gathered.unreadable_counts:
        context.log.warning(f"{gathered.unreadable_counts} record(s) of f2.bridge.counts are not counts records")
    if len(gathered.registry_versions) > 1:
        context.log.warning(f"the registry changed during the run: versions {sorted(gathered.registry_versions)}")
    counts = counts_table(results)
    check_metadata: dict[str, Any] = {
        "hour": hour_label,
        "registry_version": version,
        "raw_records": sum(r.raw_records for r in results.values()),
        "bridge_counted": sum(r.bridge_counted for r in results.values()),
        "differences": total_differences,
        "failing_controllers": dg.MetadataValue.json(sorted(r.controller for r in failed)),
        "counts_per_hop": counts,
    }
    if listed:
        check_metadata["difference_list"] = differences_table(listed)
    if failed:
        context.log.error(f"reconciliation of {hour_label} failed: {summary}")
        alerts.send(
            alerts.blocking_check_alert(
                asset=HOURLY_RECONCILIATION.to_user_string(),
                check=CHECK_NAME,
                window=hour_label,
                summary=summary,
                sample=[d.row() for d in listed[:5]],
            )
        )
    return dg.MaterializeResult(
        metadata={
            "hour": hour_label,
            "registry_version": version,
            "controllers": len(results),
            # Numbers the UI plots across partitions.
            "raw_records": sum(r.raw_records for r in results.values()),
            "bridge_counted": sum(r.bridge_counted for r in results.values()),
            "differences": total_differences,
            "failing_controllers": len(failed),
            "summary": summary,
            "counts_per_hop": counts,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK_NAME,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=check_metadata,
                description=summary,
            )
        ],
    )


hourly_reconciliation_job = dg.define_asset_job(
    "hourly_reconciliation_job",
    selection=[HOURLY_RECONCILIATION],
    description="Reconciles one receive hour across every hop (a backfill: any range of hours).",
)

_GRACE = timedelta(minutes=ReconciliationSettings().grace_minutes)


@dg.schedule(
    name="hourly_reconciliation_schedule",
    job=hourly_reconciliation_job,
    cron_schedule=f"{int(_GRACE.total_seconds() // 60) % 60} * * * *",
    execution_timezone="UTC",
    default_status=default_status(dg.DefaultScheduleStatus),
    description="Reconciles each hour F2_RECONCILE_GRACE_MINUTES after it closed.",
)
def hourly_reconciliation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    due = context.scheduled_execution_time.astimezone(UTC) - _GRACE
    hour = bucket_floor(due, timedelta(hours=1)) - timedelta(hours=1)
    key = hour.strftime(reconciliation_partitions.fmt)
    return dg.RunRequest(run_key=key, partition_key=key)
