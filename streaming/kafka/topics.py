"""The platform's Kafka topics (docs/contracts.md) and their creation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RAW = "f2.raw"
DECODED = "f2.decoded"
LATEST = "f2.latest"
DEADLETTER = "f2.deadletter"
EVENTS = "f2.events"
# The bridges' durable counts of the MQTT messages they received (streaming/bridge_counts.py).
BRIDGE_COUNTS = "f2.bridge.counts"

# Header names on raw and dead-letter records.
H_MQTT_TOPIC = "f2.mqtt.topic"
H_RECEIVED_AT = "f2.received_at"
# On raw records of reader topics: the id of the key the bridge fingerprinted the credential with.
H_REDACTED = "f2.redacted"
H_REASON = "f2.reason"
H_DETAIL = "f2.detail"
H_SOURCE_TOPIC = "f2.source.topic"
H_SOURCE_PARTITION = "f2.source.partition"
H_SOURCE_OFFSET = "f2.source.offset"

GROUP_PROCESSOR = "f2-processor"
GROUP_SINK = "f2-sink"
MQTT_SHARE_GROUP = "f2-bridge"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(RAW, {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}),
    # The decoded stream is what the sink reads: never compacted, so no unread reading can be erased.
    TopicSpec(DECODED, {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}),
    # Last known value per device_id:datapoint_id; a view for consumers, never the sink's input.
    TopicSpec(LATEST, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    TopicSpec(DEADLETTER, {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}),
    # Access, alarm and presence events, keyed by controller MAC (a controller's events stay in order); the
    # sink's second input. Never compacted: every event is a row of its own.
    TopicSpec(EVENTS, {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}),
    # One small record per bridge produce batch: what it received, by receive hour and controller; read by
    # the hourly reconciliation (f2_platform/reconciliation). Kept as long as the dead letters.
    TopicSpec(BRIDGE_COUNTS, {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)}),
)


def topic_config(spec: TopicSpec, min_insync_replicas: int | None) -> dict[str, str]:
    """A topic's configuration as created: its own policy, no unclean leader election (an out-of-sync replica
    never becomes leader, whatever the broker's default) and, when given, its min.insync.replicas."""
    config = {**spec.config, "unclean.leader.election.enable": "false"}
    if min_insync_replicas is not None:
        config["min.insync.replicas"] = str(min_insync_replicas)
    return config


def ensure_topics(
    kafka_config: Mapping[str, str],
    partitions: int,
    replication_factor: int = 1,
    timeout: float = 30.0,
    min_insync_replicas: int | None = None,
) -> list[str]:
    """Create whichever platform topics are missing; returns the names created. min_insync_replicas None:
    the broker's default."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(dict(kafka_config))
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in TOPICS if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                spec.name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config=topic_config(spec, min_insync_replicas),
            )
            for spec in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
