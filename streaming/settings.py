"""Typed settings of the streaming daemons: the only readers of their environment variables.

`ConnectionSettings` holds the endpoints of the four external systems (names in docs/contracts.md); each
daemon has its own class (prefix F2_<DAEMON>_). A daemon reads only the environment: the local-stack
fallback lives in the `f2` CLI, which passes the resolved settings into each daemon's environment.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming.credentials.keys import CredentialKey, CredentialKeyError, check_key_id, make_key, parse_previous_keys
from streaming.registry_schema import DEFAULT_SCHEMA, validate_schema_name

_HOST = socket.gethostname()
DEFAULT_STATE_DIR = Path("/var/lib/f2")


class ConnectionSettings(BaseSettings):
    """Endpoints and credentials of the four external systems, as `f2 stack env` exports them."""

    model_config = SettingsConfigDict(env_prefix="F2_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 11883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls_port: int = 18883
    ca_cert: Path | None = None
    # The bridge connects over TLS to mqtt_tls_port (verifying the broker with ca_cert, or the system's CAs
    # when unset) instead of in clear to mqtt_port.
    mqtt_tls: bool = False
    # The bridge's client certificate and key (PEM) for a listener that requires one, as Mosquitto's device
    # listener does: the certificate's CN is then the MQTT username its ACL applies to.
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    # The CA that signed the brokers' certificates (PEM) for SASL_SSL; unset: the system's trusted CAs.
    kafka_ssl_ca_location: Path | None = None
    timeseries_dsn: str = "postgresql://postgres@127.0.0.1:15432/f2"
    registry_dsn: str = "postgresql://postgres@127.0.0.1:15432/f2"
    # The registry's schema (the reference deployment's DEVICE_SCHEMA); every registry query names it.
    registry_schema: str = DEFAULT_SCHEMA
    redis_url: str = "redis://127.0.0.1:16379/0"

    @field_validator("registry_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        return validate_schema_name(value)

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables they are read from (for a daemon's worker process)."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                out[f"F2_{name.upper()}"] = str(value)
        return out

    def kafka_config(self) -> dict[str, str]:
        """librdkafka client properties for these settings (security included)."""
        conf = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username is not None:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            conf["sasl.password"] = self.kafka_sasl_password
        if self.kafka_ssl_ca_location is not None:
            conf["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        return conf


class LogSettings(BaseSettings):
    """The daemons' log level (JSON lines on stderr)."""

    model_config = SettingsConfigDict(env_prefix="F2_", extra="ignore")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="F2_BRIDGE_", extra="ignore")

    # The MQTT session is persistent: a restarted bridge must come back with the same client id.
    client_id: str = f"f2-bridge-{_HOST}-0"
    session_expiry_s: int = 7 * 24 * 3600
    # A graceful stop ends the session (DISCONNECT with session expiry 0) instead of leaving it on the broker.
    # Mosquitto deals a share of the shared subscription's messages to every session subscribed, connected or
    # not, until it expires: a run that leaves for good (the bench's bridge) must not take later traffic. Not
    # for a production bridge: what the broker still holds for the session at that moment is discarded.
    end_session_on_exit: bool = False
    keepalive_s: int = 30
    metrics_port: int = 9101
    max_inflight: int = 1000
    # Announced to the broker as the CONNECT's Maximum Packet Size: the broker's own limit (service_config:
    # 256 kB of payload + 64 KiB for topic and properties), so nothing the broker accepts is held back.
    max_packet_size: int = Field(default=256 * 1024 + 64 * 1024, ge=1024)
    # The longest wait between reconnect attempts. Short: Mosquitto (2.0.11 measured) does not restore shared
    # subscriptions from its store, so after a broker restart what devices publish is acknowledged and dropped
    # until the bridge has subscribed again (docs/guarantees.md); a refused TCP connect a second costs nothing.
    reconnect_max_s: float = Field(default=1.0, gt=0.0)
    # 20 rather than 5: at 10,000 msg/s the broker's CPU fell from about 0.3 to 0.1-0.2 cores; at most 20 ms
    # more before a record reaches Kafka.
    linger_ms: int = 20
    # Records outstanding and none confirmed for this long: the producer is stuck (librdkafka issue 4976: a
    # restarted broker's stale metadata) and the worker restarts; the broker redelivers what was unacknowledged.
    kafka_stall_s: float = 60.0


class CredentialSettings(BaseSettings):
    """The key reader credentials are fingerprinted with (streaming/credentials): the bridge's current key, and
    the keys of earlier rotations for `f2 credentials fingerprint`.

    Plain fields, checked by the methods below rather than by pydantic, whose validation errors would quote
    the secret's value.
    """

    model_config = SettingsConfigDict(env_prefix="F2_CREDENTIAL_", extra="ignore")

    key_id: str = "k1"
    # Required by the bridge, which refuses to start without it; never logged (SecretStr).
    secret: SecretStr | None = None
    # "id:secret,id:secret": earlier keys, whose fingerprints stay in device_events after a rotation.
    previous_keys: SecretStr | None = None

    def current_key(self) -> CredentialKey:
        """The key new fingerprints are made with; CredentialKeyError naming the setting when it is unusable."""
        if self.secret is None or not self.secret.get_secret_value():
            raise CredentialKeyError(
                "F2_CREDENTIAL_SECRET is not set: reader credentials are fingerprinted with it, and the bridge "
                "does not start without it. Set it to the long random secret every bridge shares (the local stack "
                'exports it: eval "$(f2 stack env)"; Compose and Kubernetes mount it as a secret)'
            )
        return make_key(
            self.key_id,
            self.secret.get_secret_value(),
            id_setting="F2_CREDENTIAL_KEY_ID",
            secret_setting="F2_CREDENTIAL_SECRET",
        )

    def previous(self) -> list[CredentialKey]:
        """The keys of earlier rotations, in the order given (none when unset)."""
        if self.previous_keys is None:
            return []
        keys = parse_previous_keys(self.previous_keys.get_secret_value(), "F2_CREDENTIAL_PREVIOUS_KEYS")
        check_key_id(self.key_id, "F2_CREDENTIAL_KEY_ID")
        if any(k.key_id == self.key_id for k in keys):
            raise CredentialKeyError(
                f"F2_CREDENTIAL_PREVIOUS_KEYS holds the current key id {self.key_id!r} (F2_CREDENTIAL_KEY_ID): "
                "a rotation needs a new key id"
            )
        return keys

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables they are read from (for the bridge's worker)."""
        out = {"F2_CREDENTIAL_KEY_ID": self.key_id}
        if self.secret is not None:
            out["F2_CREDENTIAL_SECRET"] = self.secret.get_secret_value()
        if self.previous_keys is not None:
            out["F2_CREDENTIAL_PREVIOUS_KEYS"] = self.previous_keys.get_secret_value()
        return out


class ProcessorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="F2_PROCESSOR_", extra="ignore")

    # Stable per instance so that a restarted processor fences its predecessor's open transaction at once.
    instance_id: str = f"{_HOST}-0"
    batch_size: int = 5000
    batch_timeout_ms: int = 100
    transaction_timeout_ms: int = 30000
    max_payload_bytes: int = 65536
    cache_ttl_s: float = 300.0
    local_cache_ttl_s: float = 30.0
    negative_cache_ttl_s: float = 5.0
    redis_timeout_s: float = 0.5
    redis_retry_after_s: float = 5.0
    metrics_port: int = 9102
    # Least privilege: a role that can only read the registry (falls back to F2_REGISTRY_DSN).
    registry_dsn: str | None = None
    # At most one presence heartbeat (a `seen` record on f2.events) per controller this often: the sink's
    # last_seen is that precise, and a controller talking 30,000 times a minute costs a few records.
    presence_heartbeat_s: float = Field(default=10.0, ge=0.0)
    # An abort of the transaction that still fails this long after its first attempt will not finish (after a
    # broker restart librdkafka can answer "retry" for good): the worker exits and its supervisor starts a fresh
    # one, whose init_transactions fences this one and aborts the transaction on the broker.
    abort_give_up_s: float = Field(default=90.0, gt=0.0)
    # Multiplies the watchdog's deadlines for librdkafka's transactional calls (init 120 s, send offsets 60 s,
    # commit 90 s, abort 60 s: each past the call's own timeout). Below 1 a call is declared hung (and the
    # worker restarted) sooner, also while a broker is only slow.
    watchdog_scale: float = Field(default=1.0, gt=0.0)


class SinkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="F2_SINK_", extra="ignore")

    batch_size: int = 10000
    # A batch is written after at most this long (or batch_size records). 50 rather than 250 ms: each halving
    # took 0.1-0.3 s off the p99 latency at half the sustained maximum; under full load batches fill up anyway,
    # and a batch costs the database about a millisecond of fixed work.
    batch_timeout_ms: int = 50
    # Batches parsed ahead while the database stores the previous one (the writer thread's queue).
    pipeline_depth: int = 2
    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0
    metrics_port: int = 9103
    # Least privilege: a role that can only insert and update readings (falls back to F2_TIMESERIES_DSN).
    timeseries_dsn: str | None = None
    # How often the sink turns controllers silent past their silence_after_s to offline (controller_presence).
    presence_check_s: float = Field(default=5.0, gt=0.0)
    # A synchronous offset commit still inside librdkafka this long is hung (seen after a broker restart: the
    # group coordinator request stays queued for good): the worker exits and its supervisor starts a fresh one,
    # which re-reads from the committed offsets and re-upserts what was stored (nothing lost, nothing doubled).
    commit_hung_after_s: float = Field(default=60.0, gt=0.0)


class PresenceSettings(BaseSettings):
    """When a controller counts as silent (offline): read by the processor, which puts the silence into each
    presence heartbeat, so the sink and every later reader judge a controller by the same threshold."""

    model_config = SettingsConfigDict(env_prefix="F2_PRESENCE_", extra="ignore")

    # Silent after this many of the longest expected interval among its wired templates' ...
    silent_after_intervals: float = Field(default=3.0, gt=0.0)
    # ... or after this long when none of them has an expected interval (or the controller is unknown).
    default_silence_s: float = Field(default=300.0, gt=0.0)
