"""The checks: a frame and a schema in, an outcome out (pure: no I/O).

Each concern has a name, a severity and a meaning. ERROR means "this data is wrong" (readings from the
future, impossible values, inconsistent aggregates): such checks block what is computed downstream.
WARN means "a device misbehaves" (silent, gaps, incomplete hours, a stuck sensor): the data that exists is
right, someone should look at the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from f2_platform.quality.schemas.aggregates import aggregate_schema
from f2_platform.quality.schemas.completeness import completeness_schema
from f2_platform.quality.schemas.freshness import freshness_schema
from f2_platform.quality.schemas.gaps import gaps_schema
from f2_platform.quality.schemas.missing import missing_values_schema
from f2_platform.quality.schemas.plausibility import plausibility_schema
from f2_platform.quality.schemas.readings import readings_schema
from f2_platform.quality.schemas.stuck import stuck_schema
from f2_platform.quality.settings import QualitySettings


class Severity(StrEnum):
    ERROR = "ERROR"  # the data is wrong: blocks downstream assets
    WARN = "WARN"  # a device misbehaves


@dataclass(frozen=True)
class Concern:
    name: str
    severity: Severity
    title: str


READINGS = Concern("readings_valid", Severity.ERROR, "Readings are typed, finite, unique and not from the future")
PLAUSIBILITY = Concern("plausible_values", Severity.ERROR, "Values inside their datapoint's plausible range")
AGGREGATES = Concern("aggregate_integrity", Severity.ERROR, "Aggregate rows are consistent")
COMPLETENESS = Concern("completeness", Severity.WARN, "Hours hold the expected share of frames")
GAPS = Concern("reading_gaps", Severity.WARN, "No gap between frames longer than N intervals")
STUCK = Concern("stuck_sensors", Severity.WARN, "No value frozen over the stuck window")
FRESHNESS = Concern("device_freshness", Severity.WARN, "No device silent longer than K intervals")
# WARN, not ERROR: a reading without a value is kept as the deployment stored it and left out of every
# computation; nothing downstream is wrong because of it.
MISSING_VALUES = Concern("missing_values", Severity.WARN, "Every stored reading has a value (adopted NULLs)")
CONCERNS: tuple[Concern, ...] = (
    READINGS,
    PLAUSIBILITY,
    AGGREGATES,
    COMPLETENESS,
    GAPS,
    STUCK,
    FRESHNESS,
    MISSING_VALUES,
)

FAILED_CHECKS = "failed_checks"


@dataclass
class CheckOutcome:
    concern: Concern
    rows_checked: int
    failures: pd.DataFrame  # the failing rows of the frame, with the names of the checks they failed
    failure_count: int
    errors: list[str] = field(default_factory=list)  # schema-level failures (a wrong column type, ...)

    @property
    def passed(self) -> bool:
        return self.failure_count == 0 and not self.errors

    @property
    def name(self) -> str:
        return self.concern.name

    @property
    def severity(self) -> Severity:
        return self.concern.severity

    def sample(self, rows: int) -> list[dict[str, Any]]:
        """The first failing rows as JSON-ready records (times in ISO 8601)."""
        return records(self.failures.head(rows))

    def summary(self) -> str:
        if self.passed:
            return f"{self.name}: passed ({self.rows_checked} rows checked)"
        extra = f"; {'; '.join(self.errors)}" if self.errors else ""
        return (
            f"{self.name} [{self.severity.value}]: {self.failure_count} failure(s) in {self.rows_checked} rows{extra}"
        )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): jsonable(v) for k, v in row.items()})
    return out


def jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item"):
        return value.item()
    return value


def run_schema(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Validates lazily. Returns the failing rows, each with the sorted names of the checks it failed, and
    the failures that concern no row in particular (a column's type, a missing column)."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        located = cases[cases["index"].notna()]
        by_row: dict[Any, set[str]] = {}
        for index, check in zip(located["index"], located["check"], strict=True):
            by_row.setdefault(index, set()).add(str(check))
        errors = sorted(
            {
                f"{c.column or schema.name}: {c.check} ({c.failure_case})"
                for c in cases[cases["index"].isna()].itertuples()
            }
        )
        rows = frame.loc[[i for i in frame.index if i in by_row]].copy()
        rows[FAILED_CHECKS] = [", ".join(sorted(by_row[i])) for i in rows.index]
        return rows.reset_index(drop=True), errors
    empty = frame.head(0).copy()
    empty[FAILED_CHECKS] = pd.Series(dtype="object")
    return empty, []


def _outcome(
    concern: Concern, schema: pa.DataFrameSchema, frame: pd.DataFrame, count_column: str | None = None
) -> CheckOutcome:
    failures, errors = run_schema(schema, frame)
    count = int(failures[count_column].sum()) if count_column and not failures.empty else len(failures)
    return CheckOutcome(concern, len(frame), failures, count, errors)


def check_readings(
    frame: pd.DataFrame, as_of: datetime, settings: QualitySettings, totals: dict[str, int] | None = None
) -> CheckOutcome:
    """`totals`: the true number of suspect rows when the frame holds only the first ones."""
    outcome = _outcome(READINGS, readings_schema(as_of, timedelta(seconds=settings.future_tolerance_s)), frame)
    beyond_limit = sum(totals.values()) - len(frame) if totals else 0
    if beyond_limit > 0:
        # Suspect rows past the fetch limit are counted as failing: an upper bound, said in the summary.
        outcome.failure_count += beyond_limit
        outcome.errors.append(f"{beyond_limit} suspect rows beyond the fetch limit counted as failures")
    return outcome


def check_plausibility(frame: pd.DataFrame) -> CheckOutcome:
    """On raw readings (with below/above counts) the failure count is the number of implausible readings;
    on aggregate rows it is the number of rows holding one."""
    count_column = "implausible" if {"below_count", "above_count"} <= set(frame.columns) else None
    if count_column:
        frame = frame.assign(implausible=frame["below_count"] + frame["above_count"])
    return _outcome(PLAUSIBILITY, plausibility_schema(), frame, count_column)


def check_aggregates(frame: pd.DataFrame, start: datetime, end: datetime, width: timedelta) -> CheckOutcome:
    return _outcome(AGGREGATES, aggregate_schema(start, end, width), frame)


def check_completeness(frame: pd.DataFrame, settings: QualitySettings) -> CheckOutcome:
    return _outcome(COMPLETENESS, completeness_schema(settings.min_completeness), frame)


def check_gaps(frame: pd.DataFrame, settings: QualitySettings) -> CheckOutcome:
    return _outcome(GAPS, gaps_schema(settings.gap_after_intervals), frame)


def check_stuck(frame: pd.DataFrame, settings: QualitySettings) -> CheckOutcome:
    return _outcome(STUCK, stuck_schema(settings.stuck_after_s, settings.stuck_min_samples), frame)


def check_freshness(frame: pd.DataFrame, settings: QualitySettings) -> CheckOutcome:
    return _outcome(FRESHNESS, freshness_schema(settings.silent_after_intervals), frame)


def check_missing_values(frame: pd.DataFrame) -> CheckOutcome:
    """The failure count is the number of readings without a value (a row is a series and hour)."""
    return _outcome(MISSING_VALUES, missing_values_schema(), frame, "missing_count")
