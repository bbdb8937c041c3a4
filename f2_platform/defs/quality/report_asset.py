"""The daily data-quality report as a daily-partitioned asset, with its job and schedule.

The report is not downstream of the aggregates on purpose: it must be written precisely on the days their
blocking checks fail. It reads raw readings, the registry and the dead-letter topic itself.
"""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
import dagster as dg

from f2_platform.defs.asset_keys import DEADLETTER_TOPIC, DECODED_DATA, DEVICE_EVENTS
from f2_platform.defs.resources import DataQualityResource, KafkaAdminResource, RegistryResource, TimescaleResource
from f2_platform.environment import default_status
from f2_platform.partitions import daily_partitions
from f2_platform.quality.report import generate_daily_report, markdown_summary

DATA_QUALITY_REPORT = dg.AssetKey("data_quality_report")
GROUP = "data_quality"


@dg.asset(
    key=DATA_QUALITY_REPORT,
    deps=[DECODED_DATA, DEADLETTER_TOPIC, DEVICE_EVENTS],
    partitions_def=daily_partitions,
    group_name=GROUP,
    kinds={"html", "json"},
    description="Per UTC day: an HTML page that reads offline (completeness heatmap, out-of-range readings by "
    "datapoint, dead letters by reason over the day, silent devices; access, alarm and presence events with doors "
    "held open and presence outages) and a JSON sidecar with the same numbers.",
)
def data_quality_report(
    context: dg.AssetExecutionContext,
    timescale: TimescaleResource,
    registry: RegistryResource,
    kafka_admin: KafkaAdminResource,
    data_quality: DataQualityResource,
) -> dg.MaterializeResult:
    day = context.partition_time_window.start.date()
    generated = generate_daily_report(day, timescale, registry, kafka_admin, settings=data_quality.quality_settings())
    report, files = generated.report, generated.files
    summary = report["summary"]
    if report["dead_letters"]["error"]:
        context.log.warning(f"dead letters of {day} not counted: {report['dead_letters']['error']}")
    context.log.info(f"data-quality report of {day}: {files.html}")
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(markdown_summary(report)),
            "report_html": dg.MetadataValue.path(str(files.html)),
            "report_json": dg.MetadataValue.path(str(files.json)),
            "report_url": dg.MetadataValue.url(files.html.as_uri()),
            "silent_devices": summary["silent_devices"],
            "out_of_range_readings": summary["out_of_range_readings"],
            "future_readings": summary["future_readings"],
            "gaps": summary["gaps"],
            "stuck_series": summary["stuck_series"],
            "low_completeness_hours": summary["low_completeness_hours"],
            "dead_letters": summary["dead_letters"],
            "events": summary["events"],
            "access_attempts": summary["access_attempts"],
            "doors_held_open": summary["doors_held_open"],
            "presence_outages": summary["presence_outages"],
            "failed_checks": dg.MetadataValue.json(summary["failed_checks"]),
        }
    )


data_quality_report_job = dg.define_asset_job(
    "data_quality_report_job",
    selection=[DATA_QUALITY_REPORT],
    description="Writes the data-quality report of a day.",
)
# After the daily aggregate (00:20) and the analytics (00:40): the previous day is complete by then.
data_quality_report_schedule = dg.build_schedule_from_partitioned_job(
    data_quality_report_job,
    name="data_quality_report_schedule",
    hour_of_day=0,
    minute_of_hour=50,
    default_status=default_status(dg.DefaultScheduleStatus),
)
