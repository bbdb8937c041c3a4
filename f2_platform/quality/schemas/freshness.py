"""Freshness: a device that has reported is never quiet for longer than K expected intervals.

A device without any reading in the look-back (`last_seen` empty) has no data, which is not silence.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def freshness_schema(max_intervals: int) -> pa.DataFrameSchema:
    def fresh(frame: pd.DataFrame) -> pd.Series:
        return frame["silent_for_s"].isna() | (frame["silent_for_s"] <= max_intervals * frame["interval_s"])

    return pa.DataFrameSchema(
        {
            "device_id": pa.Column("int64"),
            "last_seen": pa.Column(UTC_TIME, nullable=True, coerce=True),
            "silent_for_s": pa.Column("float64", pa.Check.ge(0), nullable=True),
            "interval_s": pa.Column("int64", pa.Check.gt(0)),
        },
        checks=[pa.Check(fresh, name=f"reported_within_{max_intervals}_intervals")],
        unique=["device_id"],
        name="freshness",
    )
