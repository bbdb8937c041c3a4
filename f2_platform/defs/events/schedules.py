"""Jobs of the event aggregates (the targets of their schedules) and their schedules."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.asset_keys import EVENTS_DAILY, EVENTS_HOURLY
from f2_platform.environment import default_status

# In-process: every step is SQL run by the database (as the readings' aggregate jobs).
events_hourly_job = dg.define_asset_job(
    "events_hourly_job", selection=[EVENTS_HOURLY], executor_def=dg.in_process_executor
)
events_daily_job = dg.define_asset_job(
    "events_daily_job", selection=[EVENTS_DAILY], executor_def=dg.in_process_executor
)

_STATUS = default_status(dg.DefaultScheduleStatus)

# Ten past the hour: after the readings' hourly run (five past), the sink has written the hour's events.
events_hourly_schedule = dg.build_schedule_from_partitioned_job(
    events_hourly_job, name="events_hourly_schedule", minute_of_hour=10, default_status=_STATUS
)
# Before the daily report (00:50), which shows the day's events from device_events itself.
events_daily_schedule = dg.build_schedule_from_partitioned_job(
    events_daily_job, name="events_daily_schedule", hour_of_day=0, minute_of_hour=25, default_status=_STATUS
)
