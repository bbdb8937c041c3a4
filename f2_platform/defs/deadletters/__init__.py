"""Dead letters in Dagster: the replay job (job.py), the sensor that proposes a replay when a registry change
would rescue dead letters (sensor.py), and the summary asset by reason, controller and day (summary_asset.py).
The logic lives in f2_platform/deadletters."""
