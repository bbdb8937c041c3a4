"""Hourly and daily aggregates: partitioned assets (assets.py), their jobs and schedules (schedules.py), and the
late-data sensor (late_data_sensor.py)."""
