"""The SQL of deadletter_replays (timeseries migration 0009): what replays did, keyed by the dead letter's
source record."""

from __future__ import annotations

# One replay at a time (whatever runs it: the CLI, the Dagster job): a session lock held for the whole run.
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('f2-deadletter-replay'))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext('f2-deadletter-replay'))"

STATUS_SQL = """
SELECT r.source_topic, r.source_partition, r.source_offset, r.outcome
FROM deadletter_replays r
JOIN unnest(%s::text[], %s::int[], %s::bigint[]) AS s(topic, part, off)
  ON r.source_topic = s.topic AND r.source_partition = s.part AND r.source_offset = s.off
"""

# A replayed dead letter stays replayed; a still-failing one takes the latest attempt's outcome and reason.
RECORD_SQL = """
INSERT INTO deadletter_replays AS r (
    source_topic, source_partition, source_offset, deadletter_partition, deadletter_offset, dead_lettered_at,
    original_reason, controller_mac, mqtt_topic, outcome, reason, detail, readings, events, device_time,
    registry_version, decoder_version, run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source_topic, source_partition, source_offset) DO UPDATE SET
    outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, detail = EXCLUDED.detail,
    readings = EXCLUDED.readings, events = EXCLUDED.events, device_time = EXCLUDED.device_time,
    registry_version = EXCLUDED.registry_version, decoder_version = EXCLUDED.decoder_version,
    run_id = EXCLUDED.run_id, attempts = r.attempts + 1, replayed_at = now()
WHERE r.outcome <> 'replayed'
"""
