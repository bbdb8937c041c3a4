"""Analytics: the dbt project (dbt/) in the asset graph, downstream of the aggregates.

`analytics_daily_job` builds one day of the models together with the daily aggregate's checks: a failed
blocking check (wrong data) keeps the models of that day from being built. Its schedule runs after the
daily aggregate's.
"""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.analytics.assets import build_dbt_assets, dbt_resource
from f2_platform.defs.analytics.project import prepared_manifest
from f2_platform.defs.asset_keys import READINGS_DAILY
from f2_platform.environment import automation_runs_by_default


def defs() -> dg.Definitions:
    models = build_dbt_assets(prepared_manifest())
    job = dg.define_asset_job(
        "analytics_daily_job",
        selection=dg.AssetSelection.assets(models) | dg.AssetSelection.checks_for_assets(READINGS_DAILY),
        description="One day of the dbt models, after the daily aggregate's checks (blocking ones gate them).",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        name="analytics_daily_schedule",
        hour_of_day=0,
        minute_of_hour=40,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if automation_runs_by_default()
        else dg.DefaultScheduleStatus.STOPPED,
    )
    return dg.Definitions(assets=[models], jobs=[job], schedules=[schedule], resources={"dbt": dbt_resource()})
