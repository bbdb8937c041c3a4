"""Access, alarm and presence events (device_events, written by the sink): hourly and daily aggregates as
partitioned assets (assets.py, windows recomputed by maintenance.py), their pandera asset checks and the
door-held-open warning with its alert (checks.py), jobs and schedules (schedules.py)."""
