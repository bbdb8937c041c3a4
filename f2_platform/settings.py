"""Typed settings: the only place that reads environment variables.

Names are the contract in docs/contracts.md: a deployment sets them once and every daemon, the `f2` CLI and the
Dagster resources read them through these classes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streaming.settings import DEFAULT_STATE_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent


class ProjectSettings(BaseSettings):
    """Where the platform's files that are not Python live: sql/ (migrations, grants), dbt/ and workspace.yaml.

    A checkout holds them beside f2_platform/, the default. An installed wheel holds the packages only, so an
    installation names the folder: the image sets F2_PROJECT_DIR=/app.
    """

    model_config = SettingsConfigDict(env_prefix="F2_", extra="ignore")

    project_dir: Path = REPO_ROOT


PROJECT_DIR = ProjectSettings().project_dir


class StackSettings(BaseSettings):
    """Where and on which loopback ports the local stack (`f2 stack`) runs its private services."""

    model_config = SettingsConfigDict(env_prefix="F2_STACK_", extra="ignore", populate_by_name=True)

    state_dir: Path = Field(DEFAULT_STATE_DIR, validation_alias="F2_STATE_DIR")
    host: str = "127.0.0.1"
    # Defaults sit 10000 above each service's usual port so they never clash with system services.
    postgres_port: int = 15432
    redis_port: int = 16379
    mqtt_port: int = 11883
    mqtt_tls_port: int = 18883
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    enroll_port: int = 18443
    kafka_libs: Path = REPO_ROOT / ".cache" / "kafka" / "libs"
    kafka_heap: str = "512m"  # per broker
    kafka_partitions: int = 6
    # Kafka nodes: 1, or 3 for a KRaft cluster (each node broker and controller; node n listens on
    # kafka_port + 2(n-1) and kafka_controller_port + 2(n-1)). Unset: what the state folder was set up with
    # (f2_platform/stack/kafka.py records it), else 1.
    kafka_brokers: int | None = Field(None, ge=1)
    # The client listener speaks SASL_SSL (the broker certificate from the stack's PKI) instead of
    # SASL_PLAINTEXT. Unset: what the running stack was started with, else off.
    kafka_tls: bool | None = None


class DagsterSettings(BaseSettings):
    """The Dagster code location's own settings (prefix F2_DAGSTER_); endpoints come from ConnectionSettings.

    `environment` decides what differs between a laptop, CI and production (see f2_platform/environment.py);
    `partitions_start` is the first day of the aggregate partitions (hourly and daily, UTC); `ui_port` the port
    of the local UI (`f2 dagster dev`, `make demo`).
    """

    model_config = SettingsConfigDict(env_prefix="F2_DAGSTER_", extra="ignore")

    environment: Literal["local", "ci", "prod"] = "local"
    partitions_start: date = date(2025, 1, 1)
    # The UI of `f2 dagster dev`, as `make demo` starts it.
    ui_port: int = 3000


class RegistryLinkSettings(BaseSettings):
    """How the time-series database reaches a registry that lives in another database (`f2 db migrate` links
    it with postgres_fdw for dbt and queries: f2_platform/db/registry_link.py).

    `dsn` (F2_REGISTRY_LINK_DSN) is the registry as the time-series *server* sees it (its host may differ from
    the one the CLI uses) and the role the link reads as, best a read-only one; unset: F2_REGISTRY_DSN.
    """

    model_config = SettingsConfigDict(env_prefix="F2_REGISTRY_LINK_", extra="ignore")

    dsn: str | None = None
