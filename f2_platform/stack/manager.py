"""`f2 stack`: the local stack as one unit: up, down, status, env, reset."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from f2_platform.settings import StackSettings
from f2_platform.stack.kafka import KAFKA_CLIENT_USER, KAFKA_SASL_MECHANISM, KafkaCluster
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.services import (
    MQTT_INTERNAL_USER,
    REDIS_PROCESSOR_USER,
    Mosquitto,
    Postgres,
    Redis,
    Service,
    ServiceStatus,
)
from streaming.settings import ConnectionSettings, CredentialSettings

Say = Callable[[str], None]
# The local stack's credential key id; a rotation would add it to F2_CREDENTIAL_PREVIOUS_KEYS.
LOCAL_CREDENTIAL_KEY_ID = "k1"


def _quiet(_: str) -> None:
    return None


class Stack:
    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.layout = StackLayout(self.settings)
        self.postgres = Postgres(self.layout)
        self.redis = Redis(self.layout)
        self.mosquitto = Mosquitto(self.layout)
        # Kafka's TLS listener shows the broker certificate of the same PKI as Mosquitto's device listener.
        self.kafka = KafkaCluster(self.layout, self.mosquitto.ensure_pki)

    @property
    def services(self) -> list[Service]:
        """Every process of the stack (each Kafka node on its own)."""
        return [self.postgres, self.redis, *self.kafka.nodes, self.mosquitto]

    @property
    def units(self) -> list[Service | KafkaCluster]:
        """What starts and stops as one: each service, and Kafka's nodes together."""
        return [self.postgres, self.redis, self.kafka, self.mosquitto]

    def up(self, say: Say = _quiet) -> None:
        self.layout.create()
        for unit in self.units:
            if unit.running():
                say(f"{unit.name}: already running (pid {unit.pid()}, port {unit.port})")
                continue
            where = unit.where if isinstance(unit, KafkaCluster) else f"{self.settings.host}:{unit.port}"
            say(f"{unit.name}: starting on {where} ...")
            unit.start()
            say(f"{unit.name}: answering (pid {unit.pid()})")
        from streaming.kafka.topics import ensure_topics

        replication = self.kafka.replication
        created = ensure_topics(
            self.env_settings().kafka_config(),
            self.settings.kafka_partitions,
            replication_factor=replication.replication_factor,
            min_insync_replicas=replication.min_insync_replicas,
        )
        if created:
            say(f"kafka: created topics {', '.join(created)}")

    def down(self, say: Say = _quiet) -> None:
        for unit in reversed(self.units):
            running = unit.any_running() if isinstance(unit, KafkaCluster) else unit.running()
            if running:
                say(f"{unit.name}: stopping (pid {unit.pid()}) ...")
                unit.stop()
                say(f"{unit.name}: stopped")
            else:
                say(f"{unit.name}: not running")

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services]

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "F2_STATE_DIR": str(s.state_dir),
            "F2_MQTT_HOST": s.host,
            "F2_MQTT_PORT": str(s.mqtt_port),
            "F2_MQTT_USERNAME": MQTT_INTERNAL_USER,
            "F2_MQTT_PASSWORD": self.mosquitto.password,
            "F2_MQTT_TLS_PORT": str(s.mqtt_tls_port),
            "F2_CA_CERT": str(self.layout.pki_dir / "ca.crt"),
            "F2_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "F2_KAFKA_SECURITY_PROTOCOL": self.kafka.shape.security_protocol,
            "F2_KAFKA_SASL_MECHANISM": KAFKA_SASL_MECHANISM,
            "F2_KAFKA_SASL_USERNAME": KAFKA_CLIENT_USER,
            "F2_KAFKA_SASL_PASSWORD": self.kafka.client_password,
            **({"F2_KAFKA_SSL_CA_LOCATION": str(self.kafka.ca_location)} if self.kafka.ca_location is not None else {}),
            # The schema owner: migrations, Dagster's maintenance, operators' tools.
            "F2_TIMESERIES_DSN": self.postgres.dsn(),
            "F2_REGISTRY_DSN": self.postgres.dsn(),
            "F2_REDIS_URL": self.redis.url(REDIS_PROCESSOR_USER),
            # Least privilege per daemon: the processor reads the registry, the sink writes readings.
            "F2_PROCESSOR_REGISTRY_DSN": self.postgres.role_dsn("f2_processor"),
            "F2_SINK_TIMESERIES_DSN": self.postgres.role_dsn("f2_sink"),
            "F2_ENROLL_URL": f"https://{s.host}:{s.enroll_port}",
            "F2_ENROLL_PORT": str(s.enroll_port),
            # The key the bridge fingerprints reader credentials with (streaming/credentials).
            "F2_CREDENTIAL_KEY_ID": LOCAL_CREDENTIAL_KEY_ID,
            "F2_CREDENTIAL_SECRET": self.layout.secret("credential-secret"),
        }

    def env_settings(self) -> ConnectionSettings:
        env = self.env()
        return ConnectionSettings(
            state_dir=self.settings.state_dir,
            mqtt_host=env["F2_MQTT_HOST"],
            mqtt_port=int(env["F2_MQTT_PORT"]),
            mqtt_username=env["F2_MQTT_USERNAME"],
            mqtt_password=env["F2_MQTT_PASSWORD"],
            mqtt_tls_port=int(env["F2_MQTT_TLS_PORT"]),
            ca_cert=Path(env["F2_CA_CERT"]),
            kafka_bootstrap_servers=env["F2_KAFKA_BOOTSTRAP_SERVERS"],
            kafka_security_protocol=env["F2_KAFKA_SECURITY_PROTOCOL"],
            kafka_sasl_mechanism=env["F2_KAFKA_SASL_MECHANISM"],
            kafka_sasl_username=env["F2_KAFKA_SASL_USERNAME"],
            kafka_sasl_password=env["F2_KAFKA_SASL_PASSWORD"],
            kafka_ssl_ca_location=self.kafka.ca_location,
            timeseries_dsn=env["F2_TIMESERIES_DSN"],
            registry_dsn=env["F2_REGISTRY_DSN"],
            redis_url=env["F2_REDIS_URL"],
        )

    def credential_settings(self) -> CredentialSettings:
        env = self.env()
        return CredentialSettings(
            key_id=env["F2_CREDENTIAL_KEY_ID"], secret=env["F2_CREDENTIAL_SECRET"], previous_keys=None
        )

    def reset(self, say: Say = _quiet) -> None:
        self.down(say)
        if self.settings.state_dir.exists():
            shutil.rmtree(self.settings.state_dir)
            say(f"removed {self.settings.state_dir}")
