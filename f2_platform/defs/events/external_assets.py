"""The events' real-time path as external assets: maintained by the processor and the sink, never run by
Dagster; the event aggregates and the analytics hang below them."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.asset_keys import (
    COMPONENT_STATES,
    CONTROLLER_PRESENCE,
    DEVICE_EVENTS,
    EVENTS_TOPIC,
    RAW_TOPIC,
)
from streaming.kafka import topics

GROUP = "streaming"

events_topic = dg.AssetSpec(
    EVENTS_TOPIC,
    deps=[RAW_TOPIC],
    description=f"Kafka topic {topics.EVENTS}: access, state and presence events, written by the processor in the "
    "same transactions as readings (key: controller MAC).",
    group_name=GROUP,
    kinds={"kafka"},
    metadata={"topic": topics.EVENTS, "written_by": "f2 processor", "consumer_group": topics.GROUP_SINK},
)
device_events = dg.AssetSpec(
    DEVICE_EVENTS,
    deps=[EVENTS_TOPIC],
    description="TimescaleDB hypertable of events, one row per (time, controller_mac, connector, component, kind), "
    "with the previous state and how long it lasted; written by the sink (docs/domain.md §10).",
    group_name=GROUP,
    kinds={"timescaledb"},
    metadata={
        "dagster/table_name": "device_events",
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn("time", "timestamptz"),
                dg.TableColumn("controller_mac", "text"),
                dg.TableColumn("connector", "smallint"),
                dg.TableColumn("component", "text"),
                dg.TableColumn("kind", "text", description="state, access, indicator or presence"),
                dg.TableColumn("state", "text"),
                dg.TableColumn("previous_state", "text"),
                dg.TableColumn("previous_duration_s", "double precision"),
                dg.TableColumn("credential_fingerprint", "text"),
            ]
        ),
    },
)
component_states = dg.AssetSpec(
    COMPONENT_STATES,
    deps=[EVENTS_TOPIC],
    description="The latest state of each component and since when (a door open since ...), kept by the sink.",
    group_name=GROUP,
    kinds={"postgres"},
    metadata={"dagster/table_name": "component_states"},
)
controller_presence = dg.AssetSpec(
    CONTROLLER_PRESENCE,
    deps=[EVENTS_TOPIC],
    description="Whether each controller talks (online/offline since when), kept by the sink.",
    group_name=GROUP,
    kinds={"postgres"},
    metadata={"dagster/table_name": "controller_presence"},
)
