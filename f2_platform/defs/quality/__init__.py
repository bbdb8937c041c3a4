"""Data quality: asset checks on the aggregate partitions and on recent readings (pandera schemas from
f2_platform.quality), the daily data-quality report, and the alerts (blocking check failed, device silent)."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.quality.aggregate_checks import AGGREGATE_CHECKS
from f2_platform.defs.quality.readings_checks import (
    READINGS_CHECKS,
    recent_readings_checks_job,
    recent_readings_checks_schedule,
)
from f2_platform.defs.quality.report_asset import (
    data_quality_report,
    data_quality_report_job,
    data_quality_report_schedule,
)
from f2_platform.defs.quality.silence_sensor import device_silence_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[data_quality_report],
        asset_checks=[*AGGREGATE_CHECKS, *READINGS_CHECKS],
        jobs=[recent_readings_checks_job, data_quality_report_job],
        schedules=[recent_readings_checks_schedule, data_quality_report_schedule],
        sensors=[device_silence_sensor],
    )
