"""The real-time path as external assets: maintained by the daemons, observed (never run) by Dagster."""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.asset_keys import DEADLETTER_TOPIC, DECODED_DATA, DECODED_TOPIC, RAW_TOPIC
from streaming.kafka import topics

GROUP = "streaming"

raw_topic = dg.AssetSpec(
    RAW_TOPIC,
    description=f"Kafka topic {topics.RAW}: MQTT payloads as the bridge received them (key: controller MAC).",
    group_name=GROUP,
    kinds={"kafka"},
    metadata={"topic": topics.RAW, "written_by": "f2 bridge", "consumer_group": topics.GROUP_PROCESSOR},
)
decoded_topic = dg.AssetSpec(
    DECODED_TOPIC,
    deps=[RAW_TOPIC],
    description=f"Kafka topic {topics.DECODED}: decoded readings, written by the processor in transactions.",
    group_name=GROUP,
    kinds={"kafka"},
    metadata={"topic": topics.DECODED, "written_by": "f2 processor", "consumer_group": topics.GROUP_SINK},
)
deadletter_topic = dg.AssetSpec(
    DEADLETTER_TOPIC,
    deps=[RAW_TOPIC],
    description=f"Kafka topic {topics.DEADLETTER}: raw records that cannot be decoded, with their reason class.",
    group_name=GROUP,
    kinds={"kafka"},
    metadata={"topic": topics.DEADLETTER, "written_by": "f2 processor"},
)
decoded_data = dg.AssetSpec(
    DECODED_DATA,
    deps=[DECODED_TOPIC],
    description="TimescaleDB hypertable of readings, one row per (timestamp, device_id, datapoint_id), "
    "written by the sink (and by the reprocessing job after a registry fix).",
    group_name=GROUP,
    kinds={"timescaledb"},
    metadata={
        "dagster/table_name": "decoded_data",
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn("timestamp", "timestamptz"),
                dg.TableColumn("device_id", "int"),
                dg.TableColumn("datapoint_id", "int"),
                dg.TableColumn("value", "double precision"),
            ]
        ),
    },
)
