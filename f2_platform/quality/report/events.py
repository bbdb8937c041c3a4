"""The report's section on access, alarm and presence events of the day (device_events), read from the events
themselves (not from the event aggregates: the report must not depend on their runs): events per hour and
kind, access attempts per reader and the most scanned credentials (fingerprints only), alarm activations,
doors with their open time and the runs held open longer than the threshold, and presence outages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from f2_platform.quality.events import door_runs_frame
from f2_platform.quality.frames import Timeseries, typed
from f2_platform.quality.settings import QualitySettings
from f2_platform.quality.window import CheckWindow

KINDS = ("state", "access", "indicator", "presence")
TOP_CREDENTIALS = 10
# Alarm components and the state that activates them.
ALARMS = {"siren": "powered", "strike": "powered", "motion-sensor": "detected", "exit-button": "pressed"}

_SCOPE = "(%(macs)s::text[] IS NULL OR controller_mac = ANY(%(macs)s::text[]))"

BY_HOUR_KIND = f"""
SELECT time_bucket(INTERVAL '1 hour', "time") AS hour, kind, count(*) AS events
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s AND {_SCOPE}
GROUP BY 1, 2
"""  # noqa: S608 - a constant

ACCESS_BY_READER = f"""
SELECT controller_mac, connector, component, count(*) AS attempts,
       count(DISTINCT credential_fingerprint) AS credentials
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s AND kind = 'access' AND {_SCOPE}
GROUP BY 1, 2, 3
ORDER BY attempts DESC, controller_mac, connector, component
"""  # noqa: S608 - a constant

TOP_FINGERPRINTS = f"""
SELECT credential_fingerprint AS fingerprint, count(*) AS attempts,
       count(DISTINCT (controller_mac, connector, component)) AS readers, min("time") AS first, max("time") AS last
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s AND kind = 'access' AND credential_fingerprint IS NOT NULL
  AND {_SCOPE}
GROUP BY 1
ORDER BY attempts DESC, fingerprint
LIMIT %(limit)s
"""  # noqa: S608 - a constant

ALARM_ACTIVATIONS = f"""
SELECT controller_mac, connector, component, split_part(component, '-', 1) AS prefix, state, count(*) AS activations
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s AND kind = 'state'
  AND state IN ('powered', 'detected', 'pressed') AND previous_state IS DISTINCT FROM state
  AND (component LIKE 'siren-%%' OR component LIKE 'strike-%%' OR component LIKE 'motion-sensor-%%'
       OR component LIKE 'exit-button-%%')
  AND {_SCOPE}
GROUP BY 1, 2, 3, 4, 5
ORDER BY controller_mac, connector, component
"""  # noqa: S608 - a constant

# Offline runs of each controller overlapping the window: those starting inside it and the one going on when
# it started; each with its end (the next online event), or none while it lasts.
OUTAGES = f"""
WITH starts AS (
    SELECT controller_mac, "time" AS run_start
    FROM device_events
    WHERE "time" >= %(start)s AND "time" < %(end)s AND kind = 'presence' AND state = 'offline'
      AND previous_state IS DISTINCT FROM 'offline' AND {_SCOPE}
    UNION
    SELECT cp.controller_mac, b.run_start
    FROM controller_presence cp
    CROSS JOIN LATERAL (
        SELECT d.state, d."time" - make_interval(secs => CASE WHEN d.previous_state = 'offline'
                                                           THEN coalesce(d.previous_duration_s, 0) ELSE 0 END)
               AS run_start
        FROM device_events d
        WHERE d.controller_mac = cp.controller_mac AND d.component = 'controller' AND d.connector = 0
          AND d.kind = 'presence' AND d."time" < %(start)s
        ORDER BY d."time" DESC
        LIMIT 1
    ) b
    WHERE b.state = 'offline'
      AND (%(macs)s::text[] IS NULL OR cp.controller_mac = ANY(%(macs)s::text[]))
)
SELECT s.controller_mac, s.run_start, e.run_end
FROM starts s
LEFT JOIN LATERAL (
    SELECT d."time" AS run_end
    FROM device_events d
    WHERE d.controller_mac = s.controller_mac AND d.component = 'controller' AND d.connector = 0
      AND d.kind = 'presence' AND d."time" > s.run_start AND d.state = 'online'
    ORDER BY d."time"
    LIMIT 1
) e ON true
ORDER BY s.controller_mac, s.run_start
"""  # noqa: S608 - a constant


def _iso(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()


def _seconds(start: Any, end: Any) -> float:
    return max(0.0, (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds())


def build_events_section(
    ts: Timeseries, window: CheckWindow, controllers: Sequence[str] | None, settings: QualitySettings
) -> dict[str, Any]:
    """The day's events section of the report (JSON-ready)."""
    macs = sorted({m.lower() for m in controllers}) if controllers else None
    params: dict[str, Any] = {"start": window.start, "end": window.end, "macs": macs, "limit": TOP_CREDENTIALS}
    until = window.observed_end
    hours = window.hours()

    by_hour = typed(ts.fetch_df(BY_HOUR_KIND, params), ints=["events"], times=["hour"])
    by_kind = {kind: int(by_hour.loc[by_hour["kind"] == kind, "events"].sum()) for kind in KINDS}
    per_hour = []
    for hour in hours:
        rows = by_hour[by_hour["hour"] == pd.Timestamp(hour)]
        per_hour.append({"hour": _iso(hour), "counts": {str(r.kind): int(r.events) for r in rows.itertuples()}})

    readers = [
        {
            "controller_mac": str(r.controller_mac),
            "connector": int(r.connector),
            "component": str(r.component),
            "attempts": int(r.attempts),
            "distinct_credentials": int(r.credentials),
        }
        for r in ts.fetch_df(ACCESS_BY_READER, params).itertuples()
    ]
    credentials = [
        {
            "fingerprint": str(r.fingerprint),
            "attempts": int(r.attempts),
            "readers": int(r.readers),
            "first": _iso(r.first),
            "last": _iso(r.last),
        }
        for r in ts.fetch_df(TOP_FINGERPRINTS, params).itertuples()
    ]
    alarms = [
        {
            "controller_mac": str(r.controller_mac),
            "connector": int(r.connector),
            "component": str(r.component),
            "type": str(r.component).rsplit("-", 1)[0],
            "state": str(r.state),
            "activations": int(r.activations),
        }
        for r in ts.fetch_df(ALARM_ACTIVATIONS, params).itertuples()
    ]

    runs = door_runs_frame(ts, window)
    if macs is not None:
        runs = runs[runs["controller_mac"].isin(macs)]
    doors: dict[tuple[str, int, str], dict[str, Any]] = {}
    held_open = []
    for r in runs.itertuples():
        end = r.run_end if not pd.isna(r.run_end) else pd.Timestamp(until)
        inside = _seconds(max(pd.Timestamp(r.run_start), pd.Timestamp(window.start)), min(end, pd.Timestamp(until)))
        door = doors.setdefault(
            (str(r.controller_mac), int(r.connector), str(r.component)),
            {
                "controller_mac": str(r.controller_mac),
                "connector": int(r.connector),
                "component": str(r.component),
                "openings": 0,
                "open_s": 0.0,
                "longest_open_s": 0.0,
                "held_open_runs": 0,
            },
        )
        door["openings"] += int(pd.Timestamp(r.run_start) >= pd.Timestamp(window.start))
        door["open_s"] = round(door["open_s"] + inside, 3)
        door["longest_open_s"] = max(door["longest_open_s"], round(float(r.held_s), 3))
        if float(r.held_s) > settings.door_held_open_s:
            door["held_open_runs"] += 1
            held_open.append(
                {
                    "controller_mac": str(r.controller_mac),
                    "connector": int(r.connector),
                    "component": str(r.component),
                    "run_start": _iso(r.run_start),
                    "run_end": _iso(r.run_end),
                    "held_s": round(float(r.held_s), 3),
                    "still_open": bool(r.still_open),
                }
            )

    outages = []
    for r in ts.fetch_df(OUTAGES, params).itertuples():
        end = pd.Timestamp(r.run_end) if not pd.isna(r.run_end) else pd.Timestamp(until)
        outages.append(
            {
                "controller_mac": str(r.controller_mac),
                "start": _iso(r.run_start),
                "end": _iso(r.run_end),
                "ongoing": pd.isna(r.run_end),
                "length_s": round(_seconds(r.run_start, end), 3),
                "offline_in_day_s": round(
                    _seconds(max(pd.Timestamp(r.run_start), pd.Timestamp(window.start)), min(end, pd.Timestamp(until))),
                    3,
                ),
            }
        )

    return {
        "threshold_door_held_open_s": settings.door_held_open_s,
        "total": sum(by_kind.values()),
        "by_kind": by_kind,
        "by_hour": per_hour,
        "access": {
            "attempts": sum(r["attempts"] for r in readers),
            "by_reader": readers,
            "top_credentials": credentials,
        },
        "alarms": alarms,
        "doors": sorted(doors.values(), key=lambda d: (d["controller_mac"], d["connector"], d["component"])),
        "door_held_open": held_open,
        "outages": outages,
    }


def summary_of(section: dict[str, Any]) -> dict[str, int]:
    return {
        "events": section["total"],
        "access_attempts": section["access"]["attempts"],
        "doors_held_open": len(section["door_held_open"]),
        "presence_outages": len(section["outages"]),
    }


def hour_label(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%H")
