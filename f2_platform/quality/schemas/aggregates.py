"""Aggregate rows (readings_hourly, readings_daily): one per (bucket, series), buckets aligned and inside
the window, statistics consistent with each other."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME

_STATS = ("avg_value", "min_value", "max_value", "first_value", "last_value")


def _slack(frame: pd.DataFrame) -> pd.Series:
    # avg is a floating-point sum divided by a count: it may overshoot max by a few ulps.
    return 1e-9 * np.maximum(1.0, np.maximum(frame["min_value"].abs(), frame["max_value"].abs()))


def _ordered(frame: pd.DataFrame) -> pd.Series:
    slack = _slack(frame)
    return (frame["min_value"] - slack <= frame["avg_value"]) & (frame["avg_value"] <= frame["max_value"] + slack)


def _ends_inside(frame: pd.DataFrame) -> pd.Series:
    inside = pd.Series(True, index=frame.index)
    for column in ("first_value", "last_value"):
        inside &= (frame["min_value"] <= frame[column]) & (frame[column] <= frame["max_value"])
    return inside


def _stddev_defined(frame: pd.DataFrame) -> pd.Series:
    # Sample standard deviation: undefined for one sample, defined for more.
    return frame["stddev_value"].isna() == (frame["sample_count"] == 1)


def aggregate_schema(start: datetime, end: datetime, width: timedelta) -> pa.DataFrameSchema:
    seconds = int(width.total_seconds())

    def aligned(buckets: pd.Series) -> pd.Series:
        return (buckets.astype("int64") // 1_000_000) % seconds == 0

    stats = {name: pa.Column("float64", pa.Check(np.isfinite, name="finite")) for name in _STATS}
    return pa.DataFrameSchema(
        {
            "bucket": pa.Column(
                UTC_TIME,
                [
                    pa.Check.ge(pd.Timestamp(start), name="inside_window"),
                    pa.Check.lt(pd.Timestamp(end), name="before_window_end"),
                    pa.Check(aligned, name="bucket_aligned"),
                ],
                coerce=True,
            ),
            "device_id": pa.Column("int64"),
            "datapoint_id": pa.Column("int64"),
            **stats,
            "sample_count": pa.Column("int64", pa.Check.ge(1)),
            "stddev_value": pa.Column("float64", pa.Check.ge(0), nullable=True),
        },
        checks=[
            pa.Check(_ordered, name="min_le_avg_le_max"),
            pa.Check(_ends_inside, name="first_last_within_min_max"),
            pa.Check(_stddev_defined, name="stddev_iff_several_samples"),
        ],
        unique=["bucket", "device_id", "datapoint_id"],
        name="aggregates",
    )
