"""After a successful reprocessing run, requests the aggregate partitions of its window."""

# No `from __future__ import annotations`: Dagster reads these functions' annotations at definition time.
from collections.abc import Mapping
from typing import Any

import dagster as dg

from f2_platform.defs.aggregates.schedules import readings_daily_job, readings_hourly_job
from f2_platform.defs.reprocessing.job import reprocess_job
from f2_platform.defs.reprocessing.window import OP_NAME, Window, window_from_config
from f2_platform.environment import default_status


def window_of_run(run_config: Mapping[str, Any]) -> Window:
    config = run_config["ops"][OP_NAME]["config"]
    return window_from_config(config["start"], config["end"], list(config["device_ids"]))


def followup_requests(run_id: str, window: Window) -> list[dg.RunRequest]:
    """Pure: one run per affected partition, keyed by the reprocessing run so it is requested once."""
    tags = {"f2/trigger": "reprocessing", "f2/reprocess_run": run_id}
    return [
        dg.RunRequest(run_key=f"{run_id}:{job.name}:{key}", job_name=job.name, partition_key=key, tags=tags)
        for job, keys in (
            (readings_hourly_job, window.hourly_keys()),
            (readings_daily_job, window.daily_keys()),
        )
        for key in keys
    ]


@dg.run_status_sensor(
    name="reprocess_followup_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[reprocess_job],
    request_jobs=[readings_hourly_job, readings_daily_job],
    description="Requests the hourly and daily aggregate partitions of a successful reprocessing run's window.",
    default_status=default_status(dg.DefaultSensorStatus),
)
def reprocess_followup_sensor(context: dg.RunStatusSensorContext) -> list[dg.RunRequest]:
    run = context.dagster_run
    return followup_requests(run.run_id, window_of_run(run.run_config))
