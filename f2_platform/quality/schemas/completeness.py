"""Cadence and completeness: the share of a device's expected frames present in each hour."""

from __future__ import annotations

import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def completeness_schema(min_share: float) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "device_id": pa.Column("int64"),
            "hour": pa.Column(UTC_TIME, coerce=True),
            "frames": pa.Column("int64", pa.Check.ge(0)),
            "expected_frames": pa.Column("float64", pa.Check.ge(0)),
            "completeness": pa.Column(
                "float64",
                [pa.Check.in_range(0.0, 1.0), pa.Check.ge(min_share, name="complete_enough")],
            ),
            "interval_s": pa.Column("int64", pa.Check.gt(0)),
        },
        unique=["device_id", "hour"],
        name="completeness",
    )
