"""Data quality of the events (device_events): the frames the event schemas validate, read from the time-series
database, and the checks that run them (pure apart from the `ts.fetch_df` reads).

- events_valid (ERROR): the window's events hold the contract's vocabulary, durations are not negative, none
  is from the future.
- event_aggregates_consistent (ERROR): the window's event aggregate rows agree with each other.
- door_held_open (WARN): no door's open run overlapping the window lasted longer than the threshold (a run
  still open counts until now).
- reader_flood (WARN): no reader got more scans in one minute than the threshold.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from f2_platform.quality import checks as c
from f2_platform.quality.frames import Timeseries, typed
from f2_platform.quality.schemas.events import (
    door_held_open_schema,
    event_activity_schema,
    events_schema,
    reader_flood_schema,
)
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow
from f2_platform.timeseries.event_aggregate_sql import EventLevel

EVENTS_VALID = c.Concern(
    "events_valid", c.Severity.ERROR, "Events hold valid components, kinds and states, and are not from the future"
)
EVENT_AGGREGATES = c.Concern("event_aggregates_consistent", c.Severity.ERROR, "Event aggregate rows are consistent")
DOOR_HELD_OPEN = c.Concern("door_held_open", c.Severity.WARN, "No door held open longer than the threshold")
READER_FLOOD = c.Concern("reader_flood", c.Severity.WARN, "No reader flooded with scans")
EVENT_CONCERNS = (EVENTS_VALID, EVENT_AGGREGATES, DOOR_HELD_OPEN, READER_FLOOD)

EVENT_COLUMNS = (
    "time",
    "controller_mac",
    "connector",
    "component",
    "kind",
    "state",
    "previous_state",
    "previous_duration_s",
    "credential_fingerprint",
    "credential_length",
    "indicator_hex",
)
WINDOW_EVENTS = """
SELECT "time", controller_mac, connector, component, kind, state, previous_state, previous_duration_s,
       credential_fingerprint, credential_length, indicator_hex
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s
ORDER BY "time", controller_mac, connector, component, kind
"""

# Every open run of a door that overlaps the window: those starting inside it, and the one going on when it
# started (its start from the stored run, f2_state_run_start of migration 0006); each with its end (the
# door's first other state after it), or none while it is still open.
DOOR_RUNS = """
WITH starts AS (
    SELECT controller_mac, connector, component, "time" AS run_start, controller_id, device_id
    FROM device_events
    WHERE "time" >= %(start)s AND "time" < %(end)s AND kind = 'state' AND component LIKE 'door-sensor-%%'
      AND state = 'open' AND previous_state IS DISTINCT FROM 'open'
    UNION
    SELECT cs.controller_mac, cs.connector, cs.component, b.run_start, cs.controller_id, cs.device_id
    FROM component_states cs
    CROSS JOIN LATERAL (
        SELECT d.state, f2_state_run_start(d.controller_mac, d.connector, d.component, d."time") AS run_start
        FROM device_events d
        WHERE d.controller_mac = cs.controller_mac AND d.component = cs.component AND d.connector = cs.connector
          AND d.kind = 'state' AND d."time" < %(start)s
        ORDER BY d."time" DESC
        LIMIT 1
    ) b
    WHERE cs.component LIKE 'door-sensor-%%' AND b.state = 'open'
)
SELECT s.controller_mac, s.connector, s.component, s.controller_id, s.device_id, s.run_start, e.run_end,
       extract(epoch FROM coalesce(e.run_end, greatest(%(as_of)s::timestamptz, s.run_start)) - s.run_start)::float8
           AS held_s,
       e.run_end IS NULL AS still_open
FROM starts s
LEFT JOIN LATERAL (
    SELECT d."time" AS run_end
    FROM device_events d
    WHERE d.controller_mac = s.controller_mac AND d.component = s.component AND d.connector = s.connector
      AND d.kind = 'state' AND d."time" > s.run_start AND d.state <> 'open'
    ORDER BY d."time"
    LIMIT 1
) e ON true
ORDER BY s.controller_mac, s.connector, s.component, s.run_start
"""


# Scans per reader and minute, where there is more than one (one scan a minute never floods).
READER_MINUTES = """
SELECT controller_mac, connector, component, time_bucket(INTERVAL '1 minute', "time") AS minute,
       count(*) AS scans, count(DISTINCT credential_fingerprint) AS credentials
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s AND kind = 'access'
GROUP BY 1, 2, 3, 4
HAVING count(*) > 1
ORDER BY scans DESC, controller_mac, connector, component, minute
"""


def activity_rows(level: EventLevel) -> str:
    """The window's aggregate rows (zeroed ones left out) with their per-kind-and-state counts summed."""
    return f"""
SELECT a.bucket, a.controller_mac, a.connector, a.component, a.events,
       coalesce(n.counted, 0) AS counted_events, a.access_attempts, a.distinct_credentials, a.open_count,
       a.open_s, a.longest_open_s, a.outages, a.outage_s
FROM {level.activity_table} a
LEFT JOIN (
    SELECT bucket, controller_mac, connector, component, sum(events) AS counted
    FROM {level.counts_table}
    WHERE bucket >= %(start)s AND bucket < %(end)s
    GROUP BY 1, 2, 3, 4
) n USING (bucket, controller_mac, connector, component)
WHERE a.bucket >= %(start)s AND a.bucket < %(end)s AND (a.events > 0 OR a.open_s > 0 OR a.outage_s > 0)
ORDER BY a.bucket, a.controller_mac, a.connector, a.component
"""  # noqa: S608 - table names come from EventLevel constants


def events_frame(ts: Timeseries, window: CheckWindow) -> pd.DataFrame:
    return typed_events(ts.fetch_df(WINDOW_EVENTS, {"start": window.start, "end": window.end}))


def typed_events(frame: pd.DataFrame) -> pd.DataFrame:
    """device_events rows with the dtypes the events schema expects, whatever the driver made of them."""
    if frame.empty:
        frame = pd.DataFrame(columns=list(EVENT_COLUMNS))
    frame = typed(frame, ints=["connector"], floats=["previous_duration_s", "credential_length"], times=["time"])
    for column in ("controller_mac", "component", "kind"):
        frame[column] = frame[column].astype(str)
    for column in ("state", "previous_state", "credential_fingerprint", "indicator_hex"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def door_runs_frame(ts: Timeseries, window: CheckWindow) -> pd.DataFrame:
    frame = ts.fetch_df(DOOR_RUNS, {"start": window.start, "end": window.end, "as_of": window.as_of})
    columns = [
        "controller_mac",
        "connector",
        "component",
        "controller_id",
        "device_id",
        "run_start",
        "run_end",
        "held_s",
        "still_open",
    ]
    if frame.empty:
        frame = pd.DataFrame(columns=columns)
    frame = typed(frame, ints=["connector"], floats=["held_s"], times=["run_start", "run_end"])
    frame["still_open"] = frame["still_open"].astype(bool)
    for column in ("controller_mac", "component"):
        frame[column] = frame[column].astype(str)
    for column in ("controller_id", "device_id"):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame[columns]


def activity_frame(ts: Timeseries, level: EventLevel, window: CheckWindow) -> pd.DataFrame:
    frame = ts.fetch_df(activity_rows(level), {"start": window.start, "end": window.end})
    ints = ["connector", "events", "counted_events", "access_attempts", "distinct_credentials", "open_count", "outages"]
    columns = ["bucket", "controller_mac", "component", *ints, "open_s", "longest_open_s", "outage_s"]
    if frame.empty:
        frame = pd.DataFrame(columns=columns)
    frame = typed(frame, ints=ints, floats=["open_s", "longest_open_s", "outage_s"], times=["bucket"])
    for column in ("controller_mac", "component"):
        # Plain str whatever the driver and pandas made of the column (an empty result can come back typed
        # as pandas' "string" dtype, which the schema's str refuses).
        frame[column] = frame[column].astype(object).astype(str)
    return frame


def check_events(frame: pd.DataFrame, window: CheckWindow, settings: QualitySettings) -> c.CheckOutcome:
    schema = events_schema(window.start, window.end, window.as_of, timedelta(seconds=settings.future_tolerance_s))
    failures, errors = c.run_schema(schema, frame)
    return c.CheckOutcome(EVENTS_VALID, len(frame), failures, len(failures), errors)


def check_event_aggregates(frame: pd.DataFrame, window: CheckWindow, width: timedelta) -> c.CheckOutcome:
    failures, errors = c.run_schema(event_activity_schema(window.start, window.end, width), frame)
    return c.CheckOutcome(EVENT_AGGREGATES, len(frame), failures, len(failures), errors)


def check_door_held_open(frame: pd.DataFrame, settings: QualitySettings) -> c.CheckOutcome:
    schema = door_held_open_schema(float(settings.door_held_open_s))
    failures, errors = c.run_schema(schema, frame.drop(columns=["controller_id", "device_id"]))
    if not failures.empty:
        # The registry's ids back on the failing rows (the schema does not judge them).
        # `door_device_id`, not `device_id`: a door the registry does not know has none, and check_result
        # lists a `device_id` column as failing devices.
        keys = ["controller_mac", "connector", "component", "run_start"]
        ids = frame[[*keys, "controller_id", "device_id"]].rename(columns={"device_id": "door_device_id"})
        failures = failures.merge(ids, on=keys, how="left")
    return c.CheckOutcome(DOOR_HELD_OPEN, len(frame), failures, len(failures), errors)


def reader_minutes_frame(ts: Timeseries, window: CheckWindow) -> pd.DataFrame:
    frame = ts.fetch_df(READER_MINUTES, {"start": window.start, "end": window.end})
    columns = ["controller_mac", "connector", "component", "minute", "scans", "credentials"]
    if frame.empty:
        frame = pd.DataFrame(columns=columns)
    frame = typed(frame, ints=["connector", "scans", "credentials"], times=["minute"])
    for column in ("controller_mac", "component"):
        frame[column] = frame[column].astype(str)
    return frame[columns]


def check_reader_flood(frame: pd.DataFrame, settings: QualitySettings) -> c.CheckOutcome:
    failures, errors = c.run_schema(reader_flood_schema(settings.reader_flood_scans_per_minute), frame)
    return c.CheckOutcome(READER_FLOOD, len(frame), failures, len(failures), errors)
