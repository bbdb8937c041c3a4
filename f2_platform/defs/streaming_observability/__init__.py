"""The real-time path in the asset graph: topics and decoded_data as external assets (external_assets.py), and
their observations (observation_sensor.py)."""
