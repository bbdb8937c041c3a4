"""Topology lookups: in-process cache -> Redis (cache-aside) -> PostgreSQL registry.

Entries are keyed by the registry version (bumped by a trigger on every registry change and announced by
NOTIFY), so a change reaches every cache as soon as the version is heard. Redis is an optimisation: while it
is down, lookups go straight to PostgreSQL and Redis is retried after a pause.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable

import redis

from streaming.decoding.topology import ControllerTopology
from streaming.errors import TransientError
from streaming.runtime.metrics import CACHE_HITS, CACHE_MISSES, CONNECTED, ERRORS

log = logging.getLogger("f2.topology")

Loader = Callable[[str], tuple[int, ControllerTopology | None]]
_ABSENT = "absent"


def redis_key(version: int, mac: str) -> str:
    return f"f2:topology:v{version}:{mac}"


class TopologyCache:
    def __init__(
        self,
        loader: Loader,
        redis_client: redis.Redis | None,
        *,
        daemon: str = "processor",
        ttl_s: float = 300.0,
        local_ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        redis_retry_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.loader = loader
        self.redis = redis_client
        self.ttl_s = ttl_s
        self.local_ttl_s = local_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.redis_retry_after_s = redis_retry_after_s
        self.clock = clock
        self._random = (rng or random.Random()).random
        self.version = 0
        self._local: dict[str, tuple[int, float, ControllerTopology | None]] = {}
        self._redis_down_until = 0.0
        self.local_hits = 0
        self._hit_local = CACHE_HITS.labels(daemon, "local")
        self._miss_local = CACHE_MISSES.labels(daemon, "local")
        self._hit_redis = CACHE_HITS.labels(daemon, "redis")
        self._miss_redis = CACHE_MISSES.labels(daemon, "redis")
        self._redis_up = CONNECTED.labels(daemon, "redis")
        self._redis_errors = ERRORS.labels(daemon, "redis")

    def set_version(self, version: int) -> None:
        """Called by the registry listener; a newer version makes every cached entry stale."""
        if version > self.version:
            self.version = version
            self._local.clear()

    def publish_metrics(self) -> None:
        """Add the in-process hits counted since the last call to the cache-hit metric (once per batch)."""
        if self.local_hits:
            self._hit_local.inc(self.local_hits)
            self.local_hits = 0

    def get(self, mac: str) -> ControllerTopology | None:
        now = self.clock()
        entry = self._local.get(mac)
        if entry is not None and entry[0] == self.version and entry[1] > now:
            self.local_hits += 1  # published by publish_metrics(): a Prometheus increment per record costs 0.5 us
            return entry[2]
        self._miss_local.inc()
        topology = self._from_redis(mac, now)
        if topology is _MISS:
            version, loaded = self.loader(mac)
            self.set_version(version)
            self._to_redis(mac, version, loaded, now)
            topology = loaded
        ttl = self.local_ttl_s if topology is not None else self.negative_ttl_s
        # Between half and all of the TTL: entries loaded together (a fleet at start-up) would otherwise
        # expire together, and one batch would wait for a Redis round trip per controller.
        ttl *= 0.5 + 0.5 * self._random()
        self._local[mac] = (self.version, now + ttl, topology)  # type: ignore[assignment]
        return topology  # type: ignore[return-value]

    def _redis_usable(self, now: float) -> bool:
        return self.redis is not None and now >= self._redis_down_until

    def _redis_failed(self, exc: Exception, now: float) -> None:
        self._redis_errors.inc()
        self._redis_up.set(0)
        self._redis_down_until = now + self.redis_retry_after_s
        log.warning("Redis unavailable (%s); using the registry directly for %.0f s", exc, self.redis_retry_after_s)

    def _from_redis(self, mac: str, now: float) -> ControllerTopology | object | None:
        if not self._redis_usable(now) or self.version == 0:
            return _MISS
        assert self.redis is not None
        try:
            raw = self.redis.get(redis_key(self.version, mac))
        except redis.RedisError as exc:
            self._redis_failed(exc, now)
            return _MISS
        self._redis_up.set(1)
        if raw is None:
            self._miss_redis.inc()
            return _MISS
        self._hit_redis.inc()
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return None if text == _ABSENT else ControllerTopology.from_json(json.loads(text))

    def _to_redis(self, mac: str, version: int, topology: ControllerTopology | None, now: float) -> None:
        if not self._redis_usable(now):
            return
        assert self.redis is not None
        value = _ABSENT if topology is None else json.dumps(topology.to_json())
        ttl = self.ttl_s if topology is not None else self.negative_ttl_s
        try:
            self.redis.set(redis_key(version, mac), value, ex=max(1, int(ttl)))
            self._redis_up.set(1)
        except redis.RedisError as exc:
            self._redis_failed(exc, now)


_MISS = object()


def connect_redis(url: str, timeout_s: float) -> redis.Redis:
    # Timeouts everywhere: a Redis that stops answering must never hang the processor.
    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
    )


__all__ = ["TopologyCache", "TransientError", "connect_redis", "redis_key"]
