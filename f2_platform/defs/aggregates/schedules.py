"""Jobs per aggregate (the targets of schedules and sensors) and their schedules."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.asset_keys import READINGS_DAILY, READINGS_HOURLY
from f2_platform.environment import default_status

# Partitioned by their assets (hourly_partitions, daily_partitions). In-process: every step is SQL run by
# the database, and a process per step (the default) would only import the code location again.
readings_hourly_job = dg.define_asset_job(
    "readings_hourly_job", selection=[READINGS_HOURLY], executor_def=dg.in_process_executor
)
readings_daily_job = dg.define_asset_job(
    "readings_daily_job", selection=[READINGS_DAILY], executor_def=dg.in_process_executor
)

_STATUS = default_status(dg.DefaultScheduleStatus)

# Five minutes past the hour: the sink has flushed the hour's last readings; anything later is late data,
# which the late-data sensor picks up.
readings_hourly_schedule = dg.build_schedule_from_partitioned_job(
    readings_hourly_job, name="readings_hourly_schedule", minute_of_hour=5, default_status=_STATUS
)
readings_daily_schedule = dg.build_schedule_from_partitioned_job(
    readings_daily_job,
    name="readings_daily_schedule",
    hour_of_day=0,
    minute_of_hour=20,
    default_status=_STATUS,
)
