"""The SQL of the sink's events (tables and functions: sql/timeseries/0006_device_events.sql): events into
device_events with the state they follow, the recomputation a late event causes, component_states, and
controller_presence (heartbeats and the periodic offline check). Run by streaming/sink/writer.py.

Parameters are arrays (one per column, unnested): one statement per step whatever the batch holds.
"""

from __future__ import annotations

# The batch's events of kinds state, access and indicator. A key already stored (a redelivery, the bridge's
# duplicate) or twice in the batch is one row. A state event's previous state and its duration come from the
# stored events before it; RECOMPUTE_SQL then corrects what this insert could not see (another event of the
# same component earlier in the same batch) and the stored events after a late one. Returns, per component
# and kind, the earliest event inserted and how many were.
INSERT_EVENTS_SQL = """
WITH batch AS (
    SELECT DISTINCT ON ("time", controller_mac, connector, component, kind) *
    FROM unnest(
        %s::timestamptz[], %s::text[], %s::smallint[], %s::text[], %s::text[], %s::integer[], %s::integer[],
        %s::text[], %s::text[], %s::text[], %s::integer[], %s::text[], %s::text[]
    ) AS b("time", controller_mac, connector, component, kind, controller_id, device_id, state,
           credential_fingerprint, credential_key_id, credential_length, indicator_hex, mqtt_topic)
    ORDER BY "time", controller_mac, connector, component, kind
), stored AS (
    INSERT INTO device_events ("time", controller_mac, connector, component, kind, controller_id, device_id,
        state, previous_state, previous_duration_s, credential_fingerprint, credential_key_id, credential_length,
        indicator_hex, mqtt_topic)
    SELECT b."time", b.controller_mac, b.connector, b.component, b.kind, b.controller_id, b.device_id, b.state,
           p.previous_state, p.previous_duration_s, b.credential_fingerprint, b.credential_key_id,
           b.credential_length, b.indicator_hex, b.mqtt_topic
    FROM batch b
    LEFT JOIN LATERAL (
        SELECT * FROM f2_previous_state(b.controller_mac, b.connector, b.component, b."time") WHERE b.kind = 'state'
    ) p ON true
    ON CONFLICT DO NOTHING
    RETURNING controller_mac, connector, component, kind, "time"
)
SELECT controller_mac, connector, component, kind, min("time"), count(*)::integer
FROM stored
GROUP BY controller_mac, connector, component, kind
"""

# For each component that received state events (its earliest new event's time): the stored state events
# from that time on whose previous state or duration is not what the stored order says now (a late event
# changes its successor's, and the duration of the event after the next change), and the component's state
# from its latest event. Both read the events INSERT_EVENTS_SQL wrote (an earlier statement of the transaction).
RECOMPUTE_SQL = """
WITH affected AS (
    SELECT * FROM unnest(%s::text[], %s::smallint[], %s::text[], %s::timestamptz[])
        AS a(controller_mac, connector, component, since)
), stale AS (
    SELECT e."time", e.controller_mac, e.connector, e.component, p.previous_state, p.previous_duration_s
    FROM affected a
    JOIN device_events e
      ON e.controller_mac = a.controller_mac AND e.component = a.component AND e.connector = a.connector
     AND e.kind = 'state' AND e."time" >= a.since
    LEFT JOIN LATERAL f2_previous_state(e.controller_mac, e.connector, e.component, e."time") p ON true
    WHERE (e.previous_state, e.previous_duration_s) IS DISTINCT FROM (p.previous_state, p.previous_duration_s)
), corrected AS (
    UPDATE device_events d
    SET previous_state = s.previous_state, previous_duration_s = s.previous_duration_s
    FROM stale s
    WHERE d."time" = s."time" AND d.controller_mac = s.controller_mac AND d.connector = s.connector
      AND d.component = s.component AND d.kind = 'state'
    RETURNING 1
), latest AS (
    SELECT a.controller_mac, a.connector, a.component, l.controller_id, l.device_id, l.state, l."time",
           f2_state_run_start(a.controller_mac, a.connector, a.component, l."time", l.state) AS since
    FROM affected a
    CROSS JOIN LATERAL (
        SELECT e.controller_id, e.device_id, e.state, e."time"
        FROM device_events e
        WHERE e.controller_mac = a.controller_mac AND e.component = a.component AND e.connector = a.connector
          AND e.kind = 'state'
        ORDER BY e."time" DESC
        LIMIT 1
    ) l
), states AS (
    INSERT INTO component_states AS s (controller_mac, connector, component, controller_id, device_id, state,
        since, last_event_at)
    SELECT controller_mac, connector, component, controller_id, device_id, state, since, "time" FROM latest
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
SELECT (SELECT count(*) FROM corrected)::integer, (SELECT count(*) FROM states)::integer
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
