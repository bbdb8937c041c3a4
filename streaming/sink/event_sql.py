"""The SQL of the sink's events (tables and functions: sql/timeseries/0006_device_events.sql): events into
device_events with the state they follow, the recomputation a late event causes, component_states, and
controller_presence (heartbeats and the periodic offline check). Run by streaming/sink/writer.py.

Parameters are arrays (one per column, unnested): one statement per step whatever the batch holds.
"""

from __future__ import annotations

# The batch's events of kinds state, access and indicator, in one statement. A key already stored (a redelivery,
# the bridge's duplicate) or twice in the batch is one row.
#
# The common case costs no read of device_events: a component whose state events in the batch are all newer
# than its latest stored one ("after its tail": component_states holds that event's state and the start of its
# run) gets each event's previous state and duration from the tail and the batch's own order, written once,
# and its component_states row in the same statement. Every other state event (a late one, a redelivery mixed
# with new ones, a component's first events) takes its values from the stored events before it
# (f2_previous_state), and ORDER_SQL then puts that component in order. Returns, per component and kind, the
# earliest event inserted, how many were, and whether the component was after its tail (nothing left to do).
INSERT_EVENTS_SQL = """
WITH batch AS (
    SELECT DISTINCT ON ("time", controller_mac, connector, component, kind) *
    FROM unnest(
        %s::timestamptz[], %s::text[], %s::smallint[], %s::text[], %s::text[], %s::integer[], %s::integer[],
        %s::text[], %s::text[], %s::text[], %s::integer[], %s::text[], %s::text[]
    ) AS b("time", controller_mac, connector, component, kind, controller_id, device_id, state,
           credential_fingerprint, credential_key_id, credential_length, indicator_hex, mqtt_topic)
    ORDER BY "time", controller_mac, connector, component, kind
), tails AS (
    SELECT b.controller_mac, b.connector, b.component,
           coalesce(min(b."time") > s.last_event_at, false) AS after_tail, s.state AS tail_state,
           s.since AS tail_since
    FROM batch b
    LEFT JOIN component_states s
      ON s.controller_mac = b.controller_mac AND s.connector = b.connector AND s.component = b.component
    WHERE b.kind = 'state'
    GROUP BY b.controller_mac, b.connector, b.component, s.last_event_at, s.state, s.since
), ordered AS (
    SELECT b.*, t.tail_since, coalesce(lag(b.state) OVER w, t.tail_state) AS before_state,
           row_number() OVER w AS position,
           count(*) OVER (PARTITION BY b.controller_mac, b.connector, b.component) AS events
    FROM batch b
    JOIN tails t ON t.controller_mac = b.controller_mac AND t.connector = b.connector AND t.component = b.component
    WHERE b.kind = 'state' AND t.after_tail
    WINDOW w AS (PARTITION BY b.controller_mac, b.connector, b.component ORDER BY b."time")
), runs AS (
    -- A change of state starts a run; before the batch's first change, the tail's run goes on.
    SELECT o.*,
           coalesce(max(CASE WHEN o.before_state IS DISTINCT FROM o.state THEN o."time" END) OVER w, o.tail_since)
               AS run_start
    FROM ordered o
    WINDOW w AS (PARTITION BY o.controller_mac, o.connector, o.component ORDER BY o."time")
), after_tail AS (
    SELECT r.*, r.before_state AS previous_state,
           CASE WHEN r.before_state IS NOT NULL THEN
               extract(epoch FROM r."time" - coalesce(lag(r.run_start) OVER w, r.tail_since))::double precision
           END AS previous_duration_s
    FROM runs r
    WINDOW w AS (PARTITION BY r.controller_mac, r.connector, r.component ORDER BY r."time")
), rows AS (
    SELECT "time", controller_mac, connector, component, kind, controller_id, device_id, state, previous_state,
           previous_duration_s, credential_fingerprint, credential_key_id, credential_length, indicator_hex,
           mqtt_topic
    FROM after_tail
    UNION ALL
    SELECT b."time", b.controller_mac, b.connector, b.component, b.kind, b.controller_id, b.device_id, b.state,
           p.previous_state, p.previous_duration_s, b.credential_fingerprint, b.credential_key_id,
           b.credential_length, b.indicator_hex, b.mqtt_topic
    FROM batch b
    LEFT JOIN tails t ON t.controller_mac = b.controller_mac AND t.connector = b.connector AND t.component = b.component
    LEFT JOIN LATERAL (
        SELECT * FROM f2_previous_state(b.controller_mac, b.connector, b.component, b."time") WHERE b.kind = 'state'
    ) p ON true
    WHERE NOT (b.kind = 'state' AND t.after_tail)
), stored AS (
    INSERT INTO device_events ("time", controller_mac, connector, component, kind, controller_id, device_id,
        state, previous_state, previous_duration_s, credential_fingerprint, credential_key_id, credential_length,
        indicator_hex, mqtt_topic)
    SELECT * FROM rows
    ORDER BY "time", controller_mac, connector, component, kind
    ON CONFLICT DO NOTHING
    RETURNING controller_mac, connector, component, kind, "time"
), states AS (
    INSERT INTO component_states AS s (controller_mac, connector, component, controller_id, device_id, state,
        since, last_event_at)
    SELECT controller_mac, connector, component, controller_id, device_id, state, run_start, "time"
    FROM after_tail
    WHERE position = events
    ON CONFLICT (controller_mac, connector, component) DO UPDATE
    SET controller_id = EXCLUDED.controller_id, device_id = EXCLUDED.device_id, state = EXCLUDED.state,
        since = EXCLUDED.since, last_event_at = EXCLUDED.last_event_at
    WHERE EXCLUDED.last_event_at >= s.last_event_at
    RETURNING 1
)
SELECT st.controller_mac, st.connector, st.component, st.kind, min(st."time"), count(*)::integer,
       coalesce(bool_and(t.after_tail), false), (SELECT count(*) FROM states)::integer
FROM stored st
LEFT JOIN tails t
  ON t.controller_mac = st.controller_mac AND t.connector = st.connector AND t.component = st.component
 AND st.kind = 'state'
GROUP BY st.controller_mac, st.connector, st.component, st.kind
"""

# For each component whose new state events did not all follow its stored latest (arrays: MAC, connector,
# component, its earliest new event's time), its state events from that time on in time order, each with the
# previous state and duration the stored order gives it now: anchored on the component's event before that
# time (its state, and the start of its run from its stored values), a state change starts a run, and an
# event's duration counts from the start of the run of the event before it. A late event changes its
# successor's values and the durations of the rest of that run; those rows are returned for CORRECT_SQL (none
# for a component's first events, whose values INSERT_EVENTS_SQL computed, unless several came in one batch).
# The latest event of each component sets its component_states row. Reads the events INSERT_EVENTS_SQL wrote
# (an earlier statement of the transaction). One row at least: the first column is the number of
# component_states rows written, the others (null when nothing is stale) a row to correct.
ORDER_SQL = """
WITH affected AS (
    SELECT * FROM unnest(%s::text[], %s::smallint[], %s::text[], %s::timestamptz[])
        AS a(controller_mac, connector, component, since)
), anchored AS (
    -- The event before `since`: its state, and the start of its run (since less how long it had lasted).
    SELECT a.controller_mac, a.connector, a.component, a.since, p.previous_state AS anchor_state,
           a.since - make_interval(secs => p.previous_duration_s) AS anchor_run_start
    FROM affected a
    LEFT JOIN LATERAL f2_previous_state(a.controller_mac, a.connector, a.component, a.since) p ON true
), ordered AS (
    SELECT n.controller_mac, n.connector, n.component, n.anchor_state, n.anchor_run_start, e."time", e.state,
           e.controller_id, e.device_id, e.previous_state AS stored_state, e.previous_duration_s AS stored_duration,
           coalesce(lag(e.state) OVER w, n.anchor_state) AS before_state,
           row_number() OVER w AS position,
           count(*) OVER (PARTITION BY n.controller_mac, n.connector, n.component) AS events
    FROM anchored n
    -- The database functions (sql/timeseries/0006) read device_events with plans cached per session: planning
    -- these scans here, for every chunk of the hypertable, cost more than running them.
    CROSS JOIN LATERAL f2_state_events_from(n.controller_mac, n.connector, n.component, n.since) e
    WINDOW w AS (PARTITION BY n.controller_mac, n.connector, n.component ORDER BY e."time")
), runs AS (
    SELECT o.*,
           coalesce(
               max(CASE WHEN o.before_state IS DISTINCT FROM o.state THEN o."time" END) OVER w, o.anchor_run_start
           ) AS run_start
    FROM ordered o
    WINDOW w AS (PARTITION BY o.controller_mac, o.connector, o.component ORDER BY o."time")
), computed AS (
    SELECT r.*, r.before_state AS previous_state,
           CASE WHEN r.before_state IS NOT NULL THEN
               extract(epoch FROM r."time" - coalesce(lag(r.run_start) OVER w, r.anchor_run_start))::double precision
           END AS previous_duration_s
    FROM runs r
    WINDOW w AS (PARTITION BY r.controller_mac, r.connector, r.component ORDER BY r."time")
), states AS (
    INSERT INTO component_states AS s (controller_mac, connector, component, controller_id, device_id, state,
        since, last_event_at)
    SELECT controller_mac, connector, component, controller_id, device_id, state, run_start, "time"
    FROM computed
    WHERE position = events
    ON CONFLICT (controller_mac, connector, component) DO UPDATE
    SET controller_id = EXCLUDED.controller_id, device_id = EXCLUDED.device_id, state = EXCLUDED.state,
        since = EXCLUDED.since, last_event_at = EXCLUDED.last_event_at
    -- Never back in time (another writer's newer event), and no new row version when nothing changed.
    WHERE EXCLUDED.last_event_at >= s.last_event_at
      AND (s.controller_id, s.device_id, s.state, s.since, s.last_event_at)
          IS DISTINCT FROM (EXCLUDED.controller_id, EXCLUDED.device_id, EXCLUDED.state, EXCLUDED.since,
                            EXCLUDED.last_event_at)
    RETURNING 1
)
SELECT w.written, c.previous_state, c.previous_duration_s, c."time", c.controller_mac, c.connector, c.component
FROM (SELECT count(*)::integer AS written FROM states) AS w
LEFT JOIN computed c
  ON (c.stored_state, c.stored_duration) IS DISTINCT FROM (c.previous_state, c.previous_duration_s)
"""

# One stale row of ORDER_SQL, by its whole key: a probe of the primary key in the one chunk its time names (a
# join of a few stale rows with device_events was planned as a scan of every chunk).
CORRECT_SQL = """
UPDATE device_events SET previous_state = %s, previous_duration_s = %s
WHERE "time" = %s AND controller_mac = %s AND connector = %s AND component = %s AND kind = 'state'
"""

# Many stale rows at once (a late event inside a long run of equal states: every later event of the run gets a
# new duration), as one join: about 10 us a row where CORRECT_SQL, row by row, took about 1 ms.
CORRECT_MANY_SQL = """
UPDATE device_events d SET previous_state = u.previous_state, previous_duration_s = u.previous_duration_s
FROM unnest(%s::text[], %s::double precision[], %s::timestamptz[], %s::text[], %s::smallint[], %s::text[])
    AS u(previous_state, previous_duration_s, "time", controller_mac, connector, component)
WHERE d."time" = u."time" AND d.controller_mac = u.controller_mac AND d.connector = u.connector
  AND d.component = u.component AND d.kind = 'state'
"""

# The presence rows of the batch's heartbeats, locked (in MAC order, as every writer locks them) until the
# transaction ends: the transitions computed from them (event_rows.apply_seen) cannot race another sink's.
LOCK_PRESENCE_SQL = """
SELECT controller_mac, controller_id, state, since, last_seen, silence_after_s
FROM controller_presence
WHERE controller_mac = ANY(%s)
ORDER BY controller_mac
FOR UPDATE
"""

# The rows apply_seen changed, and its online events. A row another sink inserted meanwhile (first sighting
# on both) keeps the later last_seen.
PRESENCE_SQL = """
WITH rows AS (
    SELECT * FROM unnest(%s::text[], %s::integer[], %s::text[], %s::timestamptz[], %s::timestamptz[],
                         %s::double precision[])
        AS r(controller_mac, controller_id, state, since, last_seen, silence_after_s)
), upserted AS (
    INSERT INTO controller_presence AS p (controller_mac, controller_id, state, since, last_seen, silence_after_s)
    SELECT controller_mac, controller_id, state, since, last_seen, silence_after_s FROM rows
    ORDER BY controller_mac
    ON CONFLICT (controller_mac) DO UPDATE
    SET controller_id = EXCLUDED.controller_id, state = EXCLUDED.state, since = EXCLUDED.since,
        last_seen = greatest(p.last_seen, EXCLUDED.last_seen), silence_after_s = EXCLUDED.silence_after_s
    RETURNING 1
), transitions AS (
    INSERT INTO device_events ("time", controller_mac, connector, component, kind, controller_id, state,
        previous_state, previous_duration_s)
    SELECT t, mac, 0, 'controller', 'presence', id, st, prev, duration
    FROM unnest(%s::timestamptz[], %s::text[], %s::integer[], %s::text[], %s::text[], %s::double precision[])
        AS e(t, mac, id, st, prev, duration)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted)::integer, (SELECT count(*) FROM transitions)::integer
"""

# Controllers silent past their silence_after_s go offline at last_seen + silence_after_s, one `offline` event
# each (previous_duration_s: how long they had been online). Rows another transaction holds (a sink storing
# the controller's heartbeat) are skipped: their heartbeat decides, and the next check sees the outcome.
# Concurrent checks lock each row once: each transition happens once.
OFFLINE_SQL = """
WITH due AS (
    SELECT controller_mac, since AS online_since
    FROM controller_presence
    WHERE state = 'online' AND last_seen + make_interval(secs => silence_after_s) < now()
    ORDER BY controller_mac
    FOR UPDATE SKIP LOCKED
), gone AS (
    UPDATE controller_presence p
    SET state = 'offline', since = p.last_seen + make_interval(secs => p.silence_after_s)
    FROM due
    WHERE p.controller_mac = due.controller_mac
    RETURNING p.controller_mac, p.controller_id, p.since, due.online_since
)
INSERT INTO device_events ("time", controller_mac, connector, component, kind, controller_id, state,
    previous_state, previous_duration_s)
SELECT since, controller_mac, 0, 'controller', 'presence', controller_id, 'offline', 'online',
       extract(epoch FROM since - online_since)::double precision
FROM gone
ON CONFLICT DO NOTHING
RETURNING controller_mac
"""
