"""Missing values: every stored reading has a value.

The platform never writes a reading without one; a table adopted from the reference deployment may hold
them (NULL `value`). They are kept, left out of every other concern and of the aggregates, and reported
here, per series and hour, so someone can find out what the device or the old platform meant by them.
"""

from __future__ import annotations

import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME


def missing_values_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "device_id": pa.Column("int64"),
            "datapoint_id": pa.Column("int64"),
            "bucket": pa.Column(UTC_TIME, coerce=True),
            "missing_count": pa.Column("int64", pa.Check(lambda counts: counts == 0, name="reading_has_a_value")),
            "first_missing": pa.Column(UTC_TIME, coerce=True, nullable=True),
            "last_missing": pa.Column(UTC_TIME, coerce=True, nullable=True),
        },
        name="missing_values",
    )
