"""`analytics_daily_job` builds one day of the models together with the daily aggregate's checks: a failed
blocking check (wrong data) keeps the models of that day from being built. Its schedule runs after the daily
aggregate's (00:20)."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.analytics.assets import analytics_dbt_models
from f2_platform.defs.asset_keys import READINGS_DAILY
from f2_platform.environment import default_status

analytics_daily_job = dg.define_asset_job(
    "analytics_daily_job",
    selection=dg.AssetSelection.assets(analytics_dbt_models) | dg.AssetSelection.checks_for_assets(READINGS_DAILY),
    description="One day of the dbt models, after the daily aggregate's checks (blocking ones gate them).",
)
analytics_daily_schedule = dg.build_schedule_from_partitioned_job(
    analytics_daily_job,
    name="analytics_daily_schedule",
    hour_of_day=0,
    minute_of_hour=40,
    default_status=default_status(dg.DefaultScheduleStatus),
)
