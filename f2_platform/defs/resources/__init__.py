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

All of them read the contract's F2_* settings (CONTRACTS.md) through ConnectionSettings when their optional
override is unset, so the code location uses exactly what `f2 stack env` exports and secrets never appear
in Dagster's run configuration. Locally, settings the environment leaves unset come from the local stack.
"""

from __future__ import annotations

import dagster as dg

from f2_platform.defs.resources.kafka_admin import KafkaAdminResource
from f2_platform.defs.resources.redis_cache import RedisResource
from f2_platform.defs.resources.registry import RegistryResource
from f2_platform.defs.resources.timescale import TimescaleResource

__all__ = [
    "KafkaAdminResource",
    "RedisResource",
    "RegistryResource",
    "TimescaleResource",
    "defs",
    "resources",
]


def resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "timescale": TimescaleResource(),
        "registry": RegistryResource(),
        "kafka_admin": KafkaAdminResource(),
        "redis": RedisResource(),
    }


def defs() -> dg.Definitions:
    return dg.Definitions(resources=resources())
