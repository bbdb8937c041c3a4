"""What `f2 stack status` shows of Kafka: the brokers the cluster's metadata names, and for every topic (the
platform's and Kafka's internal ones) its replication factor, min.insync.replicas and the replicas in sync."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicStatus:
    name: str
    partitions: int
    replication_factor: int
    min_insync_replicas: int | None
    in_sync: int  # in-sync replicas over all partitions
    replicas: int  # replicas over all partitions
    under_replicated: tuple[int, ...] = ()  # partitions with a replica out of sync
    below_min_isr: tuple[int, ...] = ()  # partitions refusing acks=all writes (fewer in sync than the minimum)
    offline: tuple[int, ...] = ()  # partitions without a leader
    leaders: Mapping[int, int] = field(default_factory=dict)  # broker id -> partitions it leads


@dataclass(frozen=True)
class KafkaStatus:
    brokers: Mapping[int, str]  # node id -> host:port, as the cluster's metadata names them
    topics: tuple[TopicStatus, ...]


def topic_status(
    name: str, partitions: Mapping[int, tuple[int, list[int], list[int]]], min_insync_replicas: int | None
) -> TopicStatus:
    """A topic's state from its partitions' (leader, replicas, in-sync replicas); leader -1: none."""
    leaders: Counter[int] = Counter()
    under, below, offline = [], [], []
    for pid, (leader, replicas, isr) in sorted(partitions.items()):
        if leader < 0:
            offline.append(pid)
        else:
            leaders[leader] += 1
        if len(isr) < len(replicas):
            under.append(pid)
        if min_insync_replicas is not None and len(isr) < min_insync_replicas:
            below.append(pid)
    factors = {len(replicas) for _, replicas, _ in partitions.values()}
    return TopicStatus(
        name=name,
        partitions=len(partitions),
        replication_factor=max(factors) if factors else 0,
        min_insync_replicas=min_insync_replicas,
        in_sync=sum(len(isr) for _, _, isr in partitions.values()),
        replicas=sum(len(replicas) for _, replicas, _ in partitions.values()),
        under_replicated=tuple(under),
        below_min_isr=tuple(below),
        offline=tuple(offline),
        leaders=dict(sorted(leaders.items())),
    )


def describe_kafka(config: Mapping[str, str], timeout: float = 10.0) -> KafkaStatus:
    """The brokers and every topic, read through the admin API (metadata and topic configurations)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({**config, "socket.timeout.ms": int(timeout * 1000)})
    metadata = admin.list_topics(timeout=timeout)
    brokers = {b.id: f"{b.host}:{b.port}" for b in sorted(metadata.brokers.values(), key=lambda b: b.id)}
    names = sorted(metadata.topics)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    min_isr: dict[str, int | None] = dict.fromkeys(names)
    if resources:
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            entry = future.result(timeout=timeout).get("min.insync.replicas")
            min_isr[resource.name] = int(entry.value) if entry is not None and entry.value is not None else None
    topics = tuple(
        topic_status(
            name,
            {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in metadata.topics[name].partitions.values()},
            min_isr[name],
        )
        for name in names
    )
    return KafkaStatus(brokers, topics)


def _partitions(ids: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in ids)


def format_kafka_status(status: KafkaStatus, expected_brokers: int) -> tuple[list[str], bool]:
    """The lines `f2 stack status` prints, and whether Kafka is whole: every broker registered, every partition
    led and every replica in sync."""
    lines = [f"kafka: {len(status.brokers)} of {expected_brokers} broker(s) registered"]
    lines += [f"  broker {node_id}: {address}" for node_id, address in status.brokers.items()]
    width = max([len(t.name) for t in status.topics] + [5])
    lines.append(f"  {'topic':<{width}} {'partitions':>10} {'replicas':>8} {'min.isr':>7}  in sync")
    whole = len(status.brokers) == expected_brokers
    for t in status.topics:
        state = "all" if t.in_sync == t.replicas else f"{t.in_sync} of {t.replicas}"
        notes = []
        if t.under_replicated:
            notes.append(f"under-replicated: {_partitions(t.under_replicated)}")
        if t.below_min_isr:
            notes.append(f"below min.isr (acks=all refused): {_partitions(t.below_min_isr)}")
        if t.offline:
            notes.append(f"no leader: {_partitions(t.offline)}")
        leaders = " ".join(f"{b}:{n}" for b, n in t.leaders.items())
        min_isr = "-" if t.min_insync_replicas is None else str(t.min_insync_replicas)
        lines.append(
            f"  {t.name:<{width}} {t.partitions:>10} {t.replication_factor:>8} {min_isr:>7}  {state}"
            + (f"; {'; '.join(notes)}" if notes else "")
            + (f"  (leaders by broker {leaders})" if len(status.brokers) > 1 else "")
        )
        whole = whole and not (t.under_replicated or t.offline)
    return lines, whole
