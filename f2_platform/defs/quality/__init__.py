"""Data quality: asset checks on the aggregate partitions (aggregate_checks.py) and on recent readings
(readings_checks.py), run with the pandera schemas of f2_platform.quality and the thresholds of the
`data_quality` resource; the daily data-quality report (report_asset.py); and the alerts (blocking check
failed, device silent: silence_sensor.py)."""
