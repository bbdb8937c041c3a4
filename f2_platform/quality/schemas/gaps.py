"""Gaps: consecutive frames of a device are never further apart than N expected intervals."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def gaps_schema(max_intervals: int) -> pa.DataFrameSchema:
    def within(frame: pd.DataFrame) -> pd.Series:
        return frame["gap_s"] <= max_intervals * frame["interval_s"]

    return pa.DataFrameSchema(
        {
            "device_id": pa.Column("int64"),
            "gap_start": pa.Column(UTC_TIME, coerce=True),
            "gap_end": pa.Column(UTC_TIME, coerce=True),
            "gap_s": pa.Column("float64", pa.Check.gt(0)),
            "interval_s": pa.Column("int64", pa.Check.gt(0)),
        },
        checks=[pa.Check(within, name=f"no_gap_over_{max_intervals}_intervals")],
        name="gaps",
    )
