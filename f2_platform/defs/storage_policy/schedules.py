"""The storage policy's job and its daily schedule."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.storage_policy.assets import STORAGE_POLICY_ASSETS
from f2_platform.environment import default_status

# In-process: both steps are statements run by the database (see aggregates/schedules.py).
storage_policy_job = dg.define_asset_job(
    "storage_policy_job", selection=list(STORAGE_POLICY_ASSETS), executor_def=dg.in_process_executor
)

# Daily at 02:30 UTC, after the daily aggregates of the previous day (00:20) have been materialized.
storage_policy_schedule = dg.ScheduleDefinition(
    name="storage_policy_schedule",
    job=storage_policy_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=default_status(dg.DefaultScheduleStatus),
)
