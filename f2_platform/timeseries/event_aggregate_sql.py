"""SQL of the event aggregates (timeseries migration 0007): one window of device_events into the counts and
activity tables of a level (pure text, no connection).

Runs of a state (a door open, a controller offline) are cut at the window's bounds: the state a component was
in when the window started comes from its latest event before it (one index probe per door and controller
listed in component_states / controller_presence), and a run still going at the window's end stops there (or
now, for a window not yet over).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from psycopg import sql

DOOR_PREFIX = "door-sensor-"
DOOR_OPEN = "open"
OFFLINE = "offline"


@dataclass(frozen=True)
class EventLevel:
    name: str  # hourly or daily
    bucket: timedelta
    counts_table: str
    activity_table: str

    @property
    def aggregate(self) -> str:
        """Its name in aggregate_invalidations, where late events log the windows they changed (timeseries
        migration 0010) and a run consumes them: events_hourly, events_daily (the assets' names)."""
        return f"events_{self.name}"


HOURLY = EventLevel("hourly", timedelta(hours=1), "event_counts_hourly", "event_activity_hourly")
DAILY = EventLevel("daily", timedelta(days=1), "event_counts_daily", "event_activity_daily")
LEVELS = (HOURLY, DAILY)

COUNT_COLUMNS = ("controller_mac", "connector", "component", "kind", "state", "controller_id", "device_id", "events")
COUNT_KEY = ("controller_mac", "connector", "component", "kind", "state")
ACTIVITY_COLUMNS = (
    "controller_mac",
    "connector",
    "component",
    "controller_id",
    "device_id",
    "events",
    "access_attempts",
    "distinct_credentials",
    "open_count",
    "open_s",
    "longest_open_s",
    "outages",
    "outage_s",
)
ACTIVITY_KEY = ("controller_mac", "connector", "component")
ACTIVITY_METRICS = ACTIVITY_COLUMNS[5:]

# Serialises recomputations of one table's windows (a re-run racing a scheduled run of the same partition).
# One run at a time per level, held across its transaction and taken before it: a run waiting for another then
# reads a snapshot taken after that one committed, never rows it rewrote (a concurrent-update error in
# REPEATABLE READ).
LOCK = "SELECT pg_advisory_lock(hashtext('f2-event-aggregate'), hashtext(%(table)s))"
UNLOCK = "SELECT pg_advisory_unlock(hashtext('f2-event-aggregate'), hashtext(%(table)s))"

# Events of the window per component, kind and state.
FRESH_COUNTS = """
CREATE TEMP TABLE fresh_counts ON COMMIT DROP AS
SELECT controller_mac, connector, component, kind, coalesce(state, '') AS state,
       max(controller_id) AS controller_id, max(device_id) AS device_id, count(*)::int AS events
FROM device_events
WHERE "time" >= %(start)s AND "time" < %(end)s
GROUP BY controller_mac, connector, component, kind, coalesce(state, '')
"""

# Per component: counts of the window's events, and the runs of doors' and controllers' states cut at the
# window's bounds. `tracked` holds the window's door state events and presence events, plus one row at the
# window's start with the state each door and controller was in then (its latest event before the window).
FRESH_ACTIVITY = """
CREATE TEMP TABLE fresh_activity ON COMMIT DROP AS
WITH win AS (
    SELECT * FROM device_events WHERE "time" >= %(start)s AND "time" < %(end)s
), counted AS (
    SELECT controller_mac, connector, component,
           max(controller_id) AS controller_id, max(device_id) AS device_id,
           count(*)::int AS events,
           (count(*) FILTER (WHERE kind = 'access'))::int AS access_attempts,
           (count(DISTINCT credential_fingerprint) FILTER (WHERE kind = 'access'))::int AS distinct_credentials,
           (count(*) FILTER (WHERE kind = 'state' AND component LIKE 'door-sensor-%%' AND state = 'open'
                                AND previous_state IS DISTINCT FROM 'open'))::int AS open_count,
           (count(*) FILTER (WHERE kind = 'presence' AND state = 'offline'
                                AND previous_state IS DISTINCT FROM 'offline'))::int AS outages
    FROM win
    GROUP BY controller_mac, connector, component
), tracked AS (
    SELECT controller_mac, connector, component, kind, "time", state, controller_id, device_id, 1 AS ord
    FROM win
    WHERE (kind = 'state' AND component LIKE 'door-sensor-%%') OR kind = 'presence'
    UNION ALL
    SELECT cs.controller_mac, cs.connector, cs.component, 'state', %(start)s::timestamptz, b.state,
           cs.controller_id, cs.device_id, 0
    FROM component_states cs
    CROSS JOIN LATERAL (
        SELECT d.state FROM device_events d
        WHERE d.controller_mac = cs.controller_mac AND d.component = cs.component AND d.connector = cs.connector
          AND d.kind = 'state' AND d."time" < %(start)s
        ORDER BY d."time" DESC
        LIMIT 1
    ) b
    WHERE cs.component LIKE 'door-sensor-%%'
    UNION ALL
    SELECT cp.controller_mac, 0::smallint, 'controller', 'presence', %(start)s::timestamptz, b.state,
           cp.controller_id, NULL::int, 0
    FROM controller_presence cp
    CROSS JOIN LATERAL (
        SELECT d.state FROM device_events d
        WHERE d.controller_mac = cp.controller_mac AND d.component = 'controller' AND d.connector = 0
          AND d.kind = 'presence' AND d."time" < %(start)s
        ORDER BY d."time" DESC
        LIMIT 1
    ) b
), ordered AS (
    SELECT t.*,
           lead("time") OVER w AS next_time,
           lag(state) OVER w AS state_before
    FROM tracked t
    WINDOW w AS (PARTITION BY controller_mac, connector, component, kind ORDER BY "time", ord)
), numbered AS (
    SELECT o.*,
           sum(CASE WHEN state_before IS DISTINCT FROM state THEN 1 ELSE 0 END) OVER (
               PARTITION BY controller_mac, connector, component, kind ORDER BY "time", ord
           ) AS run
    FROM ordered o
), runs AS (
    SELECT controller_mac, connector, component, kind, min(state) AS state,
           max(controller_id) AS controller_id, max(device_id) AS device_id,
           extract(epoch FROM max(coalesce(next_time, %(until)s::timestamptz)) - min("time"))::float8 AS seconds
    FROM numbered
    GROUP BY controller_mac, connector, component, kind, run
), spans AS (
    SELECT controller_mac, connector, component,
           max(controller_id) AS controller_id, max(device_id) AS device_id,
           coalesce(sum(seconds) FILTER (WHERE kind = 'state' AND state = 'open'), 0)::float8 AS open_s,
           coalesce(max(seconds) FILTER (WHERE kind = 'state' AND state = 'open'), 0)::float8 AS longest_open_s,
           coalesce(sum(seconds) FILTER (WHERE kind = 'presence' AND state = 'offline'), 0)::float8 AS outage_s
    FROM runs
    GROUP BY controller_mac, connector, component
)
SELECT coalesce(c.controller_mac, s.controller_mac) AS controller_mac,
       coalesce(c.connector, s.connector) AS connector,
       coalesce(c.component, s.component) AS component,
       coalesce(c.controller_id, s.controller_id) AS controller_id,
       coalesce(c.device_id, s.device_id) AS device_id,
       coalesce(c.events, 0) AS events,
       coalesce(c.access_attempts, 0) AS access_attempts,
       coalesce(c.distinct_credentials, 0) AS distinct_credentials,
       coalesce(c.open_count, 0) AS open_count,
       greatest(coalesce(s.open_s, 0), 0)::float8 AS open_s,
       greatest(coalesce(s.longest_open_s, 0), 0)::float8 AS longest_open_s,
       coalesce(c.outages, 0) AS outages,
       greatest(coalesce(s.outage_s, 0), 0)::float8 AS outage_s
FROM counted c
FULL JOIN spans s
  ON s.controller_mac = c.controller_mac AND s.connector = c.connector AND s.component = c.component
WHERE c.controller_mac IS NOT NULL OR s.open_s > 0 OR s.outage_s > 0
"""


def _names(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def upsert(table: str, fresh: str, columns: tuple[str, ...], key: tuple[str, ...]) -> sql.Composed:
    """The window's fresh rows into `table` at bucket %(start)s; a row whose values did not change is not
    rewritten (no write into a compressed chunk for nothing)."""
    values = tuple(c for c in columns if c not in key)
    return sql.SQL(
        "INSERT INTO {table} (bucket, {columns}) SELECT %(start)s, {columns} FROM {fresh} "
        "ON CONFLICT (bucket, {key}) DO UPDATE SET {assignments} "
        "WHERE ({current}) IS DISTINCT FROM ({excluded})"
    ).format(
        table=sql.Identifier(table),
        fresh=sql.Identifier(fresh),
        columns=_names(columns),
        key=_names(key),
        assignments=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in values),
        excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in values),
        current=sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(table), sql.Identifier(c)) for c in values),
    )


def zero_missing(table: str, fresh: str, key: tuple[str, ...], metrics: tuple[str, ...]) -> sql.Composed:
    """Rows of the window the recomputation no longer finds keep their key with every metric 0 (an UPDATE,
    never a DELETE: see the migration)."""
    return sql.SQL(
        "UPDATE {table} t SET {assignments} WHERE t.bucket = %(start)s "
        "AND ({metrics}) IS DISTINCT FROM ({zeros}) "
        "AND NOT EXISTS (SELECT 1 FROM {fresh} f WHERE {match})"
    ).format(
        table=sql.Identifier(table),
        fresh=sql.Identifier(fresh),
        assignments=sql.SQL(", ").join(sql.SQL("{} = 0").format(sql.Identifier(c)) for c in metrics),
        metrics=_names(metrics),
        zeros=sql.SQL(", ").join(sql.Literal(0) for _ in metrics),
        match=sql.SQL(" AND ").join(sql.SQL("f.{c} = t.{c}").format(c=sql.Identifier(c)) for c in key),
    )


def window_totals(level: EventLevel) -> sql.Composed:
    """The stored totals of a window: rows, events, access attempts, door openings, open time, outages."""
    return sql.SQL(
        "SELECT count(*), coalesce(sum(events), 0), coalesce(sum(access_attempts), 0), "
        "coalesce(sum(open_count), 0), coalesce(sum(open_s), 0), coalesce(max(longest_open_s), 0), "
        "coalesce(sum(outages), 0), coalesce(sum(outage_s), 0), count(DISTINCT controller_mac) "
        "FROM {table} WHERE bucket = %(start)s AND (events > 0 OR open_s > 0 OR outage_s > 0)"
    ).format(table=sql.Identifier(level.activity_table))


def window_counts(level: EventLevel) -> sql.Composed:
    """Events of a window per kind and state, and the rows holding them (for the asset's metadata)."""
    return sql.SQL(
        "SELECT kind, state, sum(events)::bigint, count(*) FROM {table} WHERE bucket = %(start)s AND events > 0 "
        "GROUP BY kind, state ORDER BY kind, state"
    ).format(table=sql.Identifier(level.counts_table))


EVENTS_WATERMARK = "SELECT dropped_before FROM f2_retention_watermarks WHERE hypertable = 'device_events'"
