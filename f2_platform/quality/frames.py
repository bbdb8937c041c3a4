"""Reads the frames the schemas validate from the time-series database, one function per concern.

`ts` is anything with `fetch_df(query, params) -> DataFrame` (the `timescale` resource). Every frame comes
back with fixed columns and dtypes, empty or not, and its times as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

import pandas as pd

from f2_platform.quality import sql as q
from f2_platform.quality.fleet import Fleet
from f2_platform.quality.window import DAY, HOUR, CheckWindow


class Timeseries(Protocol):
    def fetch_df(self, query: Any, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame: ...


def typed(
    frame: pd.DataFrame, ints: Iterable[str] = (), floats: Iterable[str] = (), times: Iterable[str] = ()
) -> pd.DataFrame:
    """Fixed dtypes whatever the driver returned (object columns for an empty result, Decimal, ...)."""
    frame = frame.copy()
    for column in ints:
        frame[column] = pd.to_numeric(frame[column]).astype("int64")
    for column in floats:
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame


def _int_list(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values]


def _float_list(values: Iterable[Any]) -> list[float | None]:
    return [None if pd.isna(v) else float(v) for v in values]


def cadence_frame(ts: Timeseries, fleet: Fleet, window: CheckWindow) -> pd.DataFrame:
    """Every periodic device x every hour of the window: frames present, frames expected, completeness.

    Hours after `as_of` are left out; an hour cut by `as_of` expects only the frames of its elapsed part.
    """
    devices = fleet.cadenced()
    columns = ["device_id", "hour", "frames", "readings", "expected_frames", "completeness", "interval_s"]
    observed_end = window.observed_end
    hours = [h for h in window.hours() if h < observed_end]
    if devices.empty or not hours:
        return typed(
            pd.DataFrame(columns=columns),
            ints=["device_id", "frames", "readings", "interval_s"],
            floats=["expected_frames", "completeness"],
            times=["hour"],
        )
    found = typed(
        ts.fetch_df(q.CADENCE, {"start": window.start, "end": observed_end, "devices": fleet_ids(devices)}),
        ints=["device_id", "frames", "readings"],
        times=["hour"],
    )
    grid = pd.MultiIndex.from_product([fleet_ids(devices), hours], names=["device_id", "hour"]).to_frame(index=False)
    grid = typed(grid, ints=["device_id"], times=["hour"])
    frame = grid.merge(found, on=["device_id", "hour"], how="left")
    frame[["frames", "readings"]] = frame[["frames", "readings"]].fillna(0).astype("int64")
    frame = frame.merge(
        devices[["device_id", "expected_interval_s"]].rename(columns={"expected_interval_s": "interval_s"}),
        on="device_id",
    )
    starts = frame["hour"].where(frame["hour"] > window.start, pd.Timestamp(window.start))
    ends = (frame["hour"] + HOUR).where(frame["hour"] + HOUR < observed_end, pd.Timestamp(observed_end))
    elapsed = (ends - starts).dt.total_seconds()
    frame["expected_frames"] = (elapsed / frame["interval_s"]).astype("float64")
    share = (frame["frames"] / frame["expected_frames"]).clip(upper=1.0)
    frame["completeness"] = share.where(frame["expected_frames"] > 0, 1.0).astype("float64")
    return frame[columns]


def fleet_ids(devices: pd.DataFrame) -> list[int]:
    return _int_list(devices["device_id"])


def plausibility_frame(ts: Timeseries, fleet: Fleet, window: CheckWindow) -> pd.DataFrame:
    """Per ranged series and hour of the window: readings, observed min/max, readings below/above range."""
    series = fleet.ranged_series()
    columns = [
        "device_id",
        "datapoint_id",
        "bucket",
        "sample_count",
        "min_value",
        "max_value",
        "below_count",
        "above_count",
        "range_min",
        "range_max",
    ]
    if series.empty:
        found = pd.DataFrame(columns=columns[:8])
    else:
        found = ts.fetch_df(
            q.PLAUSIBILITY,
            {
                "start": window.start,
                "end": window.end,
                "devices": _int_list(series["device_id"]),
                "datapoints": _int_list(series["datapoint_id"]),
                "mins": _float_list(series["min_value"]),
                "maxs": _float_list(series["max_value"]),
            },
        )
    found = typed(
        found,
        ints=["device_id", "datapoint_id", "sample_count", "below_count", "above_count"],
        floats=["min_value", "max_value"],
        times=["bucket"],
    )
    ranges = series[["device_id", "datapoint_id", "min_value", "max_value"]].rename(
        columns={"min_value": "range_min", "max_value": "range_max"}
    )
    frame = found.merge(
        typed(ranges, ints=["device_id", "datapoint_id"], floats=["range_min", "range_max"]),
        on=["device_id", "datapoint_id"],
        how="inner",
    )
    return frame[columns].sort_values(["device_id", "datapoint_id", "bucket"]).reset_index(drop=True)


def aggregate_frame(ts: Timeseries, table: str, window: CheckWindow, devices: list[int] | None = None) -> pd.DataFrame:
    frame = ts.fetch_df(q.aggregate_rows(table), {"start": window.start, "end": window.end, "devices": devices})
    if frame.empty:
        frame = pd.DataFrame(columns=list(q.AGGREGATE_COLUMNS))
    return typed(
        frame,
        ints=["device_id", "datapoint_id", "sample_count"],
        floats=["avg_value", "min_value", "max_value", "first_value", "last_value", "stddev_value"],
        times=["bucket"],
    )


def aggregate_plausibility_frame(aggregates: pd.DataFrame, fleet: Fleet) -> pd.DataFrame:
    """The plausibility frame of aggregate rows: their min/max against the ranges of registered series.

    Rows of devices that are not (or no longer) wired, or of datapoints that are not their template's,
    have no known range and are not judged.
    """
    series = fleet.ranged_series()[["device_id", "datapoint_id", "min_value", "max_value"]].rename(
        columns={"min_value": "range_min", "max_value": "range_max"}
    )
    series = typed(series, ints=["device_id", "datapoint_id"], floats=["range_min", "range_max"])
    frame = aggregates[["device_id", "datapoint_id", "bucket", "sample_count", "min_value", "max_value"]].merge(
        series, on=["device_id", "datapoint_id"], how="inner"
    )
    return frame.sort_values(["device_id", "datapoint_id", "bucket"]).reset_index(drop=True)


def gap_frame(ts: Timeseries, fleet: Fleet, window: CheckWindow) -> pd.DataFrame:
    devices = fleet.cadenced()
    columns = ["device_id", "gap_start", "gap_end", "gap_s", "interval_s"]
    if devices.empty:
        found = pd.DataFrame(columns=columns)
    else:
        found = ts.fetch_df(
            q.GAP_CANDIDATES,
            {
                "lookback": window.start - DAY,
                "start": window.start,
                "end": window.observed_end,
                "devices": fleet_ids(devices),
                "intervals": _int_list(devices["expected_interval_s"]),
            },
        )
        if found.empty:
            found = pd.DataFrame(columns=columns)
    return typed(found[columns], ints=["device_id", "interval_s"], floats=["gap_s"], times=["gap_start", "gap_end"])


def stuck_frame(ts: Timeseries, fleet: Fleet, window: CheckWindow, exempt_labels: Iterable[str]) -> pd.DataFrame:
    series = fleet.stuck_candidates(exempt_labels)
    columns = ["device_id", "datapoint_id", "value", "run_start", "run_end", "run_s", "samples"]
    if series.empty:
        found = pd.DataFrame(columns=columns)
    else:
        found = ts.fetch_df(
            q.STUCK_RUNS,
            {
                "start": window.start,
                "end": window.end,
                "devices": _int_list(series["device_id"]),
                "datapoints": _int_list(series["datapoint_id"]),
            },
        )
        if found.empty:
            found = pd.DataFrame(columns=columns)
    return typed(
        found[columns],
        ints=["device_id", "datapoint_id", "samples"],
        floats=["value", "run_s"],
        times=["run_start", "run_end"],
    )


def freshness_frame(ts: Timeseries, fleet: Fleet, window: CheckWindow, lookback: timedelta) -> pd.DataFrame:
    """Each periodic device's last reading when the window's observation stops, and for how long it has
    been quiet then. No reading within `lookback` leaves `last_seen` empty (no data, not silent)."""
    devices = fleet.cadenced()
    columns = ["device_id", "last_seen", "silent_for_s", "interval_s"]
    at = window.observed_end
    if devices.empty:
        found = pd.DataFrame(columns=["device_id", "last_seen"])
    else:
        found = ts.fetch_df(q.LAST_SEEN, {"at": at, "horizon": at - lookback, "devices": fleet_ids(devices)})
    found = typed(found, ints=["device_id"], times=["last_seen"])
    frame = found.merge(
        devices[["device_id", "expected_interval_s"]].rename(columns={"expected_interval_s": "interval_s"}),
        on="device_id",
    )
    frame["silent_for_s"] = (pd.Timestamp(at) - frame["last_seen"]).dt.total_seconds().astype("float64")
    frame["interval_s"] = frame["interval_s"].astype("int64")
    return frame[columns].sort_values("device_id").reset_index(drop=True)


def missing_values_frame(ts: Timeseries, window: CheckWindow, devices: list[int] | None) -> pd.DataFrame:
    """Per series and hour of the window: the readings without a value (NULL), the first and the last."""
    columns = ["device_id", "datapoint_id", "bucket", "missing_count", "first_missing", "last_missing"]
    found = ts.fetch_df(q.MISSING_VALUES, {"start": window.start, "end": window.end, "devices": devices})
    if found.empty:
        found = pd.DataFrame(columns=columns)
    return typed(
        found[columns],
        ints=["device_id", "datapoint_id", "missing_count"],
        times=["bucket", "first_missing", "last_missing"],
    )


def suspect_readings_frame(
    ts: Timeseries, window: CheckWindow, devices: list[int] | None, limit: int = 10_000
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Readings stamped after `as_of` (anywhere) and non-finite values in the window, at most `limit` of
    each kind, and how many of each kind there are in all."""
    found = ts.fetch_df(
        q.SUSPECT_READINGS,
        {
            "as_of": window.as_of,
            "start": window.start,
            "end": window.end,
            "devices": devices,
            "limit": limit,
        },
    )
    totals = {"future": 0, "non-finite": 0}
    if not found.empty:
        for kind, total in found.groupby("kind")["total"].max().items():
            totals[str(kind)] = int(total)
    frame = (
        found[["timestamp", "device_id", "datapoint_id", "value"]]
        if not found.empty
        else pd.DataFrame(columns=["timestamp", "device_id", "datapoint_id", "value"])
    )
    frame = typed(frame, ints=["device_id", "datapoint_id"], floats=["value"], times=["timestamp"])
    return frame.reset_index(drop=True), totals


def recent_readings_frame(
    ts: Timeseries, window: CheckWindow, devices: list[int] | None, limit: int = 2_000_000
) -> pd.DataFrame:
    """Every reading from the window's start on (the future included), for a full readings validation."""
    found = ts.fetch_df(q.RECENT_READINGS, {"start": window.start, "devices": devices, "limit": limit})
    if found.empty:
        found = pd.DataFrame(columns=["timestamp", "device_id", "datapoint_id", "value"])
    return typed(found, ints=["device_id", "datapoint_id"], floats=["value"], times=["timestamp"])
