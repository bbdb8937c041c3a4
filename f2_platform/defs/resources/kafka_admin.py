"""`kafka_admin`: offsets, lag and short-lived clients on the platform's Kafka cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from pydantic import Field

from f2_platform.environment import connection_settings

_COORDINATOR_STARTING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._TIMED_OUT,
    }
)


class KafkaAdminResource(dg.ConfigurableResource):
    """Kafka, configured from the F2_KAFKA_* settings (security included), each field overriding its setting.

    Python API:
    - `client_config() -> dict[str, str]`: librdkafka properties for your own clients.
    - `admin() -> AdminClient`.
    - `consumer(group_id, **overrides)`: context manager yielding a `Consumer` (no auto-commit,
      read_committed), closed on exit. Use `assign()`: such a consumer never joins the group unless
      it subscribes.
    - `producer(**overrides) -> Producer` (flush it yourself).
    - `partitions(topic) -> list[int]`.
    - `end_offsets(topic, committed_only=True) -> dict[int, int]`, `start_offsets(topic) -> dict[int, int]`:
      per partition.
    - `committed_offsets(group, topic) -> dict[int, int | None]` (None: the group never committed there).
    - `consumer_lag(group, topic) -> dict[int, int]`: records per partition the group has still to read.
    """

    # The code location sets each to the EnvVar named in its description when that variable is set (the
    # bootstrap servers always, outside `local`); unset ones come from the F2_KAFKA_* settings when it runs.
    bootstrap_servers: str | None = Field(default=None, description="F2_KAFKA_BOOTSTRAP_SERVERS")
    security_protocol: str | None = Field(default=None, description="F2_KAFKA_SECURITY_PROTOCOL")
    sasl_mechanism: str | None = Field(default=None, description="F2_KAFKA_SASL_MECHANISM")
    sasl_username: str | None = Field(default=None, description="F2_KAFKA_SASL_USERNAME")
    sasl_password: str | None = Field(default=None, description="F2_KAFKA_SASL_PASSWORD")
    ssl_ca_location: str | None = Field(default=None, description="F2_KAFKA_SSL_CA_LOCATION")
    timeout_s: float = 30.0

    def client_config(self) -> dict[str, str]:
        conf = connection_settings().kafka_config()
        configured = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({name: value for name, value in configured.items() if value is not None})
        return conf

    def admin(self) -> AdminClient:
        # Notices (level 5-6) such as "purging unserved events" on close are noise in run logs.
        return AdminClient({**self.client_config(), "log_level": "4"})

    @contextmanager
    def consumer(self, group_id: str, **overrides: object) -> Iterator[Consumer]:
        consumer = Consumer(
            {
                **self.client_config(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                **overrides,
            }
        )
        try:
            yield consumer
        finally:
            consumer.close()

    def producer(self, **overrides: object) -> Producer:
        return Producer({**self.client_config(), **overrides})

    def partitions(self, topic: str) -> list[int]:
        metadata = self.admin().list_topics(topic, timeout=self.timeout_s)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(f"topic {topic} is not available: {described.error if described else 'missing'}")
        return sorted(described.partitions)

    def _offsets(self, topic: str, spec: OffsetSpec, committed_only: bool) -> dict[int, int]:
        request = {TopicPartition(topic, p): spec for p in self.partitions(topic)}
        level = IsolationLevel.READ_COMMITTED if committed_only else IsolationLevel.READ_UNCOMMITTED
        # The client must outlive its futures: they are completed by its background thread.
        admin = self.admin()
        futures = admin.list_offsets(request, isolation_level=level, request_timeout=self.timeout_s)
        return {tp.partition: future.result(timeout=self.timeout_s).offset for tp, future in futures.items()}

    def end_offsets(self, topic: str, committed_only: bool = True) -> dict[int, int]:
        # With transactional writers the end that readers can reach is the last stable offset.
        return self._offsets(topic, OffsetSpec.latest(), committed_only)

    def start_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, OffsetSpec.earliest(), committed_only=False)

    def committed_offsets(self, group: str, topic: str) -> dict[int, int | None]:
        partitions = [TopicPartition(topic, p) for p in self.partitions(topic)]
        deadline = time.monotonic() + self.timeout_s
        # A consumer carrying the group id reads its commits without joining the group. (AdminClient's
        # list_consumer_group_offsets crashes librdkafka 2.16 while the group coordinator is not up yet.)
        with self.consumer(group) as consumer:
            while True:
                try:
                    committed = consumer.committed(partitions, timeout=min(5.0, max(1.0, deadline - time.monotonic())))
                    break
                except KafkaException as exc:
                    # A fresh cluster creates __consumer_offsets on the first lookup: the coordinator
                    # answers "not coordinator" or "loading" for a few seconds.
                    error = exc.args[0]
                    transient = error.retriable() or error.code() in _COORDINATOR_STARTING
                    if not transient or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.5)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in committed}

    def consumer_lag(self, group: str, topic: str) -> dict[int, int]:
        ends = self.end_offsets(topic)
        starts = self.start_offsets(topic)
        committed = self.committed_offsets(group, topic)
        lag = {}
        for partition, end in ends.items():
            # A group that never committed on a partition has everything still retained to read.
            position = committed.get(partition)
            lag[partition] = max(0, end - (position if position is not None else starts.get(partition, 0)))
        return lag
