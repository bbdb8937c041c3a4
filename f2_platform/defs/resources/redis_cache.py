"""`redis`: the Redis holding the processors' topology cache (F2_REDIS_URL)."""

from __future__ import annotations

import dagster as dg
import redis
from pydantic import Field

from f2_platform.environment import connection_settings


class RedisResource(dg.ConfigurableResource):
    """Python API:
    - `client() -> redis.Redis` (decode_responses=False; close it when done).
    - `ping() -> bool`.
    - `topology_cache_keys() -> int`: cached controller topologies (keys `f2:topology:v<version>:<mac>`).
    """

    url: str | None = Field(
        default=None,
        description="The URL; the code location sets it to EnvVar F2_REDIS_URL (unset locally: the local stack).",
    )
    socket_timeout_s: float = 5.0

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url or connection_settings().redis_url,
            socket_timeout=self.socket_timeout_s,
            socket_connect_timeout=self.socket_timeout_s,
        )

    def ping(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        finally:
            client.close()

    def topology_cache_keys(self) -> int:
        client = self.client()
        try:
            return sum(1 for _ in client.scan_iter(match="f2:topology:*", count=1000))
        finally:
            client.close()
