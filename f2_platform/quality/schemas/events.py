"""Events as stored in device_events, the event aggregates, and doors held open (docs/domain.md §10).

The vocabulary (components, kinds, states) is the events contract's: a value outside it is wrong data.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa

from f2_platform.quality.schemas import UTC_TIME

KINDS = ("state", "access", "indicator", "presence")
# component prefix -> the two states of its kind-"state" events
STATES = {
    "door-sensor": ("open", "closed"),
    "exit-button": ("pressed", "released"),
    "motion-sensor": ("detected", "clear"),
    "strike": ("powered", "unpowered"),
    "siren": ("powered", "unpowered"),
}
PRESENCE_STATES = ("online", "offline")
COMPONENT = re.compile(r"^(?:(?:door-sensor|exit-button|motion-sensor|strike|siren|reader)-[1-9][0-9]*|controller)$")
MAC = r"^[0-9a-f]{12}$"
FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
INDICATOR = re.compile(r"^[0-9A-F]{2}( [0-9A-F]{2})*$")


def prefix(component: str) -> str:
    return component.rsplit("-", 1)[0] if component != "controller" else component


def allowed_states(component: str, kind: str) -> tuple[str, ...] | None:
    """The states an event may hold; None: it holds none (access, indicator)."""
    if kind == "presence":
        return PRESENCE_STATES
    if kind == "state":
        return STATES.get(prefix(component), ())
    return None


def _state_fits(frame: pd.DataFrame, column: str) -> pd.Series:
    def fits(row: pd.Series) -> bool:
        allowed = allowed_states(str(row["component"]), str(row["kind"]))
        value = row[column]
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            # The new state is required where the kind has one; the previous one is unknown for a first event.
            return allowed is None or column == "previous_state"
        return allowed is not None and value in allowed

    return frame.apply(fits, axis=1) if not frame.empty else pd.Series(dtype=bool)


def _kind_fits_component(frame: pd.DataFrame) -> pd.Series:
    presence = frame["component"] == "controller"
    readers = frame["component"].str.startswith("reader-")
    kind = frame["kind"]
    return (
        (presence & (kind == "presence") & (frame["connector"] == 0))
        | (readers & kind.isin(["access", "indicator"]) & frame["connector"].between(1, 4))
        | (~presence & ~readers & (kind == "state") & frame["connector"].between(1, 4))
    )


def _credential_fits(frame: pd.DataFrame) -> pd.Series:
    access = frame["kind"] == "access"
    fingerprint = frame["credential_fingerprint"].fillna("").astype(str)
    well_formed = fingerprint.str.fullmatch(FINGERPRINT).astype(bool)
    length = frame["credential_length"]
    return (access & well_formed & (length.fillna(0) > 0)) | (
        ~access & frame["credential_fingerprint"].isna() & length.isna()
    )


def _indicator_fits(frame: pd.DataFrame) -> pd.Series:
    indicator = frame["kind"] == "indicator"
    hex_text = frame["indicator_hex"].fillna("").astype(str)
    well_formed = hex_text.str.fullmatch(INDICATOR).astype(bool)
    return (indicator & well_formed) | (~indicator & frame["indicator_hex"].isna())


def events_schema(start: datetime, end: datetime, as_of: datetime, future_tolerance: timedelta) -> pa.DataFrameSchema:
    """device_events rows of a window: the contract's vocabulary, durations not negative, not from the future."""
    latest = pd.Timestamp(min(end, as_of + future_tolerance))
    return pa.DataFrameSchema(
        {
            "time": pa.Column(
                UTC_TIME,
                [
                    pa.Check.ge(pd.Timestamp(start), name="inside_window"),
                    pa.Check(lambda t: t < pd.Timestamp(end), name="before_window_end"),
                    pa.Check(lambda t: t <= latest, name="not_from_the_future"),
                ],
                coerce=True,
            ),
            "controller_mac": pa.Column(str, pa.Check.str_matches(MAC, name="controller_mac_lowercase_hex")),
            "connector": pa.Column("int64", pa.Check.in_range(0, 4, name="connector_0_to_4")),
            "component": pa.Column(
                str, pa.Check(lambda c: c.map(lambda v: bool(COMPONENT.match(v))), name="component_naming")
            ),
            "kind": pa.Column(str, pa.Check.isin(KINDS, name="valid_kind")),
            "state": pa.Column(object, nullable=True),
            "previous_state": pa.Column(object, nullable=True),
            "previous_duration_s": pa.Column(
                "float64",
                [
                    pa.Check(lambda d: d.isna() | (d >= 0), name="previous_duration_not_negative"),
                    pa.Check(lambda d: d.isna() | np.isfinite(d), name="previous_duration_finite"),
                ],
                nullable=True,
            ),
            "credential_fingerprint": pa.Column(object, nullable=True),
            "credential_length": pa.Column("float64", nullable=True),
            "indicator_hex": pa.Column(object, nullable=True),
        },
        checks=[
            pa.Check(_kind_fits_component, name="kind_fits_component"),
            pa.Check(lambda f: _state_fits(f, "state"), name="valid_state"),
            pa.Check(lambda f: _state_fits(f, "previous_state"), name="valid_previous_state"),
            pa.Check(_credential_fits, name="credential_only_on_access"),
            pa.Check(_indicator_fits, name="indicator_only_on_indicator"),
        ],
        unique=["time", "controller_mac", "connector", "component", "kind"],
        name="events",
        description="device_events rows",
    )


def event_activity_schema(start: datetime, end: datetime, width: timedelta) -> pa.DataFrameSchema:
    """Rows of event_activity_* with their event_counts_* total: numbers that agree with each other."""
    seconds = width.total_seconds()
    slack = 1e-6

    def within_bucket(values: pd.Series) -> pd.Series:
        return values <= seconds + slack

    return pa.DataFrameSchema(
        {
            "bucket": pa.Column(
                UTC_TIME,
                [pa.Check.ge(pd.Timestamp(start), name="inside_window"), pa.Check.lt(pd.Timestamp(end))],
                coerce=True,
            ),
            "controller_mac": pa.Column(str),
            "connector": pa.Column("int64"),
            "component": pa.Column(str),
            "events": pa.Column("int64", pa.Check.ge(0)),
            "counted_events": pa.Column("int64", pa.Check.ge(0)),
            "access_attempts": pa.Column("int64", pa.Check.ge(0)),
            "distinct_credentials": pa.Column("int64", pa.Check.ge(0)),
            "open_count": pa.Column("int64", pa.Check.ge(0)),
            "open_s": pa.Column("float64", [pa.Check.ge(0), pa.Check(within_bucket, name="open_within_bucket")]),
            "longest_open_s": pa.Column("float64", pa.Check.ge(0)),
            "outages": pa.Column("int64", pa.Check.ge(0)),
            "outage_s": pa.Column("float64", [pa.Check.ge(0), pa.Check(within_bucket, name="outage_within_bucket")]),
        },
        checks=[
            pa.Check(lambda f: f["events"] == f["counted_events"], name="activity_matches_counts"),
            pa.Check(lambda f: f["distinct_credentials"] <= f["access_attempts"], name="credentials_le_attempts"),
            pa.Check(lambda f: f["longest_open_s"] <= f["open_s"] + slack, name="longest_le_total_open"),
            pa.Check(lambda f: f["open_count"] + f["access_attempts"] <= f["events"], name="parts_le_events"),
        ],
        unique=["bucket", "controller_mac", "connector", "component"],
        name="event_aggregates",
    )


def door_held_open_schema(threshold_s: float) -> pa.DataFrameSchema:
    """One row per open run of a door that overlaps the window: how long it lasted (until now if still open)."""
    return pa.DataFrameSchema(
        {
            "controller_mac": pa.Column(str),
            "connector": pa.Column("int64"),
            "component": pa.Column(str, pa.Check.str_startswith("door-sensor-")),
            "run_start": pa.Column(UTC_TIME, coerce=True),
            "run_end": pa.Column(UTC_TIME, coerce=True, nullable=True),
            "held_s": pa.Column(
                "float64",
                [pa.Check.ge(0), pa.Check(lambda h: h <= threshold_s, name=f"closed_within_{threshold_s:g}s")],
            ),
            "still_open": pa.Column(bool),
        },
        unique=["controller_mac", "connector", "component", "run_start"],
        name="door_held_open",
    )


def reader_flood_schema(max_per_minute: int) -> pa.DataFrameSchema:
    """One row per reader and UTC minute with more than one scan: never more than `max_per_minute`."""
    return pa.DataFrameSchema(
        {
            "controller_mac": pa.Column(str),
            "connector": pa.Column("int64"),
            "component": pa.Column(str, pa.Check.str_startswith("reader-")),
            "minute": pa.Column(UTC_TIME, coerce=True),
            "scans": pa.Column(
                "int64", pa.Check(lambda n: n <= max_per_minute, name=f"at_most_{max_per_minute}_scans_per_minute")
            ),
            "credentials": pa.Column("int64", pa.Check.ge(0)),
        },
        unique=["controller_mac", "connector", "component", "minute"],
        name="reader_flood",
    )
