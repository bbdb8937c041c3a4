"""Asset keys shared by every concern (a module, not a concern package: definitions.py skips it).

Other concerns (quality checks, analytics) attach to these keys: `decoded_data`, `readings_hourly`,
`readings_daily`, and the topics `kafka/f2_raw`, `kafka/f2_decoded`, `kafka/f2_deadletter`.
"""

from __future__ import annotations

import dagster as dg

RAW_TOPIC = dg.AssetKey(["kafka", "f2_raw"])
DECODED_TOPIC = dg.AssetKey(["kafka", "f2_decoded"])
DEADLETTER_TOPIC = dg.AssetKey(["kafka", "f2_deadletter"])
DECODED_DATA = dg.AssetKey("decoded_data")
READINGS_HOURLY = dg.AssetKey("readings_hourly")
READINGS_DAILY = dg.AssetKey("readings_daily")
