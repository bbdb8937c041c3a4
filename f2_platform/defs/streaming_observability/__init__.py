"""The real-time path in the asset graph: topics and decoded_data as external assets, and observations."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.streaming_observability.external_assets import EXTERNAL_ASSETS
from f2_platform.defs.streaming_observability.observation_sensor import streaming_observation_sensor


def defs() -> dg.Definitions:
    return dg.Definitions(assets=list(EXTERNAL_ASSETS), sensors=[streaming_observation_sensor])
