"""One resource per external system, defined once for every concern of the code location.

Keys and Python APIs (details in each class's docstring):
- `timescale` (TimescaleResource): `connect(autocommit=True)`, `fetch_all(sql, params) -> list[dict]`,
  `fetch_one`, `fetch_df(sql, params) -> pandas.DataFrame`, `execute(sql, params) -> int`, `edition()`.
  Example in an asset check: `def check(timescale: TimescaleResource): df = timescale.fetch_df("SELECT ...")`.
- `registry` (RegistryResource): read-only `connect()`, `fetch_all`, `store()` (the processor's topology
  loader), `controller_macs()`.
- `kafka_admin` (KafkaAdminResource): `client_config()`, `admin()`, `consumer(group_id)`, `producer()`,
  `partitions(topic)`, `end_offsets`, `start_offsets`, `committed_offsets`, `consumer_lag(group, topic)`.
- `redis` (RedisResource): `client()`, `ping()`, `topology_cache_keys()`.
- `data_quality` (DataQualityResource): the F2_QUALITY_* thresholds; `quality_settings()`.

The connections are the contract's F2_* settings (docs/contracts.md). The code location configures each field
with the `dg.EnvVar` of its variable (env_vars.py), so the UI shows the variable's name and never a secret;
a field left unset (locally, a variable the environment does not set) is read through ConnectionSettings
when the resource runs, which in `local` falls back to the local stack (f2_platform/environment.py).
"""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.resources.data_quality import DataQualityResource
from f2_platform.defs.resources.env_vars import env_var
from f2_platform.defs.resources.kafka_admin import KafkaAdminResource
from f2_platform.defs.resources.redis_cache import RedisResource
from f2_platform.defs.resources.registry import RegistryResource
from f2_platform.defs.resources.timescale import TimescaleResource
from streaming.settings import ConnectionSettings

__all__ = [
    "DataQualityResource",
    "KafkaAdminResource",
    "RedisResource",
    "RegistryResource",
    "TimescaleResource",
    "defs",
    "resources",
    "timescale_resource",
]


def timescale_resource() -> TimescaleResource:
    return TimescaleResource(dsn=env_var(ConnectionSettings(), "timeseries_dsn", required=True))


def resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource of the code location by key, configured from the environment as it is now."""
    conn = ConnectionSettings()
    return {
        "timescale": timescale_resource(),
        "registry": RegistryResource(
            dsn=env_var(conn, "registry_dsn", required=True), schema_name=env_var(conn, "registry_schema")
        ),
        "kafka_admin": KafkaAdminResource(
            bootstrap_servers=env_var(conn, "kafka_bootstrap_servers", required=True),
            security_protocol=env_var(conn, "kafka_security_protocol"),
            sasl_mechanism=env_var(conn, "kafka_sasl_mechanism"),
            sasl_username=env_var(conn, "kafka_sasl_username"),
            sasl_password=env_var(conn, "kafka_sasl_password"),
            ssl_ca_location=env_var(conn, "kafka_ssl_ca_location"),
        ),
        "redis": RedisResource(url=env_var(conn, "redis_url", required=True)),
        "data_quality": DataQualityResource.from_settings(),
    }


@dg.definitions
def defs() -> dg.Definitions:
    """The resources, for the defs-folder loader (f2_platform/definitions.py)."""
    return dg.Definitions(resources=resources())
