"""Hourly and daily aggregates: partitioned assets, their schedules, and the late-data sensor."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.aggregates.assets import AGGREGATE_ASSETS
from f2_platform.defs.aggregates.late_data_sensor import aggregate_late_data_sensor
from f2_platform.defs.aggregates.schedules import (
    readings_daily_job,
    readings_daily_schedule,
    readings_hourly_job,
    readings_hourly_schedule,
)


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=list(AGGREGATE_ASSETS),
        jobs=[readings_hourly_job, readings_daily_job],
        schedules=[readings_hourly_schedule, readings_daily_schedule],
        sensors=[aggregate_late_data_sensor],
    )
