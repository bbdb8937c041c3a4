"""Readings as stored in decoded_data: typed, complete, finite, one row per key, not from the future."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def readings_schema(as_of: datetime, future_tolerance: timedelta) -> pa.DataFrameSchema:
    """A reading may be stamped at most `future_tolerance` after `as_of` (device clocks drift a little)."""
    latest = pd.Timestamp(as_of + future_tolerance)
    return pa.DataFrameSchema(
        {
            # A custom check, not Check.le: failure cases then carry this name, which reports rely on.
            "timestamp": pa.Column(
                UTC_TIME,
                pa.Check(lambda stamps: stamps <= latest, name="not_from_the_future"),
                nullable=False,
                coerce=True,
            ),
            "device_id": pa.Column("int64", pa.Check.gt(0), nullable=False),
            "datapoint_id": pa.Column("int64", pa.Check.gt(0), nullable=False),
            "value": pa.Column("float64", pa.Check(np.isfinite, name="finite"), nullable=False),
        },
        unique=["timestamp", "device_id", "datapoint_id"],
        name="readings",
        description="decoded_data rows",
    )
