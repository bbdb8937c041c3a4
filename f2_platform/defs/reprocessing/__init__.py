"""Reprocessing: re-decoding a window of raw records after a registry fix (job.py), then its aggregates
(followup_sensor.py)."""
