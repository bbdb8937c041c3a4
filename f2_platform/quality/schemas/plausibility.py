"""Plausibility: the values of a series stay inside its datapoint's plausible range (registry min/max).

Validated per (series, bucket) on the observed minimum and maximum, so the same schema judges raw readings
grouped by hour and the rows of the aggregates. A missing bound is no bound.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def _not_below(frame: pd.DataFrame) -> pd.Series:
    return frame["range_min"].isna() | (frame["min_value"] >= frame["range_min"])


def _not_above(frame: pd.DataFrame) -> pd.Series:
    # NaN compares false: a series holding NaN is flagged (PostgreSQL sorts NaN above every number).
    return frame["range_max"].isna() | (frame["max_value"] <= frame["range_max"])


def plausibility_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "device_id": pa.Column("int64"),
            "datapoint_id": pa.Column("int64"),
            "bucket": pa.Column(UTC_TIME, coerce=True),
            "sample_count": pa.Column("int64", pa.Check.ge(1)),
            "min_value": pa.Column("float64", nullable=True),
            "max_value": pa.Column("float64", nullable=True),
            "range_min": pa.Column("float64", nullable=True),
            "range_max": pa.Column("float64", nullable=True),
        },
        checks=[
            pa.Check(_not_below, name="not_below_plausible_range"),
            pa.Check(_not_above, name="not_above_plausible_range"),
        ],
        name="plausibility",
    )
