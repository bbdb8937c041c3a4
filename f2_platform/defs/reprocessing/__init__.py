"""Reprocessing: re-decoding a window of raw records after a registry fix, then its aggregates."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.reprocessing.followup_sensor import reprocess_followup_sensor
from f2_platform.defs.reprocessing.job import reprocess_job


def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[reprocess_job], sensors=[reprocess_followup_sensor])
