"""Asset keys shared by every concern (a module, not a concern package: definitions.py skips it).

Other concerns (quality checks, analytics) attach to these keys: `decoded_data`, `readings_hourly`,
`readings_daily`, and the topics `kafka/f2_raw`, `kafka/f2_decoded`, `kafka/f2_deadletter`; the events:
`kafka/f2_events`, `device_events`, `component_states`, `controller_presence`, `events_hourly`, `events_daily`.
"""

from __future__ import annotations

import dagster as dg

RAW_TOPIC = dg.AssetKey(["kafka", "f2_raw"])
DECODED_TOPIC = dg.AssetKey(["kafka", "f2_decoded"])
DEADLETTER_TOPIC = dg.AssetKey(["kafka", "f2_deadletter"])
DECODED_DATA = dg.AssetKey("decoded_data")
READINGS_HOURLY = dg.AssetKey("readings_hourly")
READINGS_DAILY = dg.AssetKey("readings_daily")
EVENTS_TOPIC = dg.AssetKey(["kafka", "f2_events"])
DEVICE_EVENTS = dg.AssetKey("device_events")
COMPONENT_STATES = dg.AssetKey("component_states")
CONTROLLER_PRESENCE = dg.AssetKey("controller_presence")
EVENTS_HOURLY = dg.AssetKey("events_hourly")
EVENTS_DAILY = dg.AssetKey("events_daily")
