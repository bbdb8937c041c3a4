"""Stuck sensors: a series does not hold one value, unchanged, for a whole window of readings."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def stuck_schema(min_duration_s: float, min_samples: int) -> pa.DataFrameSchema:
    """One row per series: its longest run of an unchanged value."""

    def changes(frame: pd.DataFrame) -> pd.Series:
        return ~((frame["run_s"] >= min_duration_s) & (frame["samples"] >= min_samples))

    return pa.DataFrameSchema(
        {
            "device_id": pa.Column("int64"),
            "datapoint_id": pa.Column("int64"),
            "value": pa.Column("float64", nullable=True),
            "run_start": pa.Column(UTC_TIME, coerce=True),
            "run_end": pa.Column(UTC_TIME, coerce=True),
            "run_s": pa.Column("float64", pa.Check.ge(0)),
            "samples": pa.Column("int64", pa.Check.ge(1)),
        },
        checks=[pa.Check(changes, name="value_changes")],
        unique=["device_id", "datapoint_id"],
        name="stuck",
    )
