"""`f2 stack`: the local stack as one unit: up, down, status, env, reset."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from f2_platform.settings import StackSettings
from f2_platform.stack.layout import StackLayout
from f2_platform.stack.services import (
    KAFKA_CLIENT_USER,
    KAFKA_SASL_MECHANISM,
    MQTT_INTERNAL_USER,
    REDIS_PROCESSOR_USER,
    Kafka,
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
        self.kafka = Kafka(self.layout)
        self.mosquitto = Mosquitto(self.layout)

    @property
    def services(self) -> list[Service]:
        return [self.postgres, self.redis, self.kafka, self.mosquitto]

    def up(self, say: Say = _quiet) -> None:
        self.layout.create()
        for service in self.services:
            if service.running():
                say(f"{service.name}: already running (pid {service.pid()}, port {service.port})")
                continue
            say(f"{service.name}: starting on {self.settings.host}:{service.port} ...")
            service.start()
            say(f"{service.name}: answering (pid {service.pid()})")
        from streaming.kafka.topics import ensure_topics

        created = ensure_topics(self.env_settings().kafka_config(), self.settings.kafka_partitions)
        if created:
            say(f"kafka: created topics {', '.join(created)}")

    def down(self, say: Say = _quiet) -> None:
        for service in reversed(self.services):
            if service.running():
                say(f"{service.name}: stopping (pid {service.pid()}) ...")
                service.stop()
                say(f"{service.name}: stopped")
            else:
                say(f"{service.name}: not running")

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
            "F2_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "F2_KAFKA_SASL_MECHANISM": KAFKA_SASL_MECHANISM,
            "F2_KAFKA_SASL_USERNAME": KAFKA_CLIENT_USER,
            "F2_KAFKA_SASL_PASSWORD": self.kafka.client_password,
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
