"""The processor's topology cache against the real registry and Redis: when in-process entries expire, and
where an expired entry is read again from."""

from __future__ import annotations

import random

import pytest

from streaming.decoding.topology import ControllerTopology
from streaming.decoding.topology_cache import TopologyCache, connect_redis
from streaming.decoding.topology_store import RegistryStore
from streaming.runtime.metrics import REGISTRY
from streaming.settings import ConnectionSettings

pytestmark = pytest.mark.integration

SAMPLE_MACS = ["aabbccddee01", "aabbccddee02", "aabbccddee03", "aabbccddee04"]
LOCAL_TTL_S = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def local_misses(daemon: str) -> float:
    return REGISTRY.get_sample_value("f2_cache_misses_total", {"daemon": daemon, "layer": "local"}) or 0.0


def redis_hits(daemon: str) -> float:
    return REGISTRY.get_sample_value("f2_cache_hits_total", {"daemon": daemon, "layer": "redis"}) or 0.0


def test_entries_loaded_together_expire_spread_over_the_second_half_of_the_ttl(migrated: ConnectionSettings) -> None:
    daemon = "cache-test-spread"
    clock = Clock()
    store = RegistryStore(migrated.registry_dsn)
    loads: list[str] = []

    def load(mac: str) -> tuple[int, ControllerTopology | None]:  # the real registry read, counted
        loads.append(mac)
        return store.load(mac)

    # Unknown MACs are cached as absent (negative TTL); they widen the sample of expiries.
    unknown = [f"0000000000{k:02x}" for k in range(40)]
    macs = SAMPLE_MACS + unknown
    cache = TopologyCache(
        load,
        connect_redis(migrated.redis_url, 2.0),
        daemon=daemon,
        local_ttl_s=LOCAL_TTL_S,
        negative_ttl_s=LOCAL_TTL_S,
        clock=clock,
        rng=random.Random(7),
    )
    try:
        cache.set_version(store.version())
        loaded = {mac: cache.get(mac) for mac in macs}
        assert all(loaded[mac] is not None for mac in SAMPLE_MACS)
        assert all(loaded[mac] is None for mac in unknown)
        start = clock.now
        first_refresh: dict[str, float] = {}
        step = 0.5
        while clock.now < start + LOCAL_TTL_S + 1:
            clock.now += step
            for mac in macs:
                before = local_misses(daemon)
                cache.get(mac)
                if local_misses(daemon) > before and mac not in first_refresh:
                    first_refresh[mac] = clock.now - start
        ages = sorted(first_refresh.values())
        assert set(first_refresh) == set(macs), "every entry expires within its TTL"
        assert ages[0] >= LOCAL_TTL_S / 2 and ages[-1] <= LOCAL_TTL_S + step
        # Spread: no half-second step refreshes more than a few of the 44 entries.
        per_step = max(ages.count(a) for a in ages)
        assert per_step <= 6, f"{per_step} entries expired in the same step: {ages}"
    finally:
        store.close()


def test_an_expired_entry_is_read_again_from_redis_not_the_registry(migrated: ConnectionSettings) -> None:
    daemon = "cache-test-redis"
    clock = Clock()
    store = RegistryStore(migrated.registry_dsn)
    loads: list[str] = []

    def load(mac: str) -> tuple[int, ControllerTopology | None]:
        loads.append(mac)
        return store.load(mac)

    cache = TopologyCache(
        load, connect_redis(migrated.redis_url, 2.0), daemon=daemon, local_ttl_s=LOCAL_TTL_S, clock=clock
    )
    try:
        cache.set_version(store.version())
        first = cache.get(SAMPLE_MACS[0])
        assert first is not None
        hits = redis_hits(daemon)
        clock.now += LOCAL_TTL_S + 1
        again = cache.get(SAMPLE_MACS[0])
        assert again == first
        # Loaded from the registry once; the expired entry came back from Redis (written by the first load,
        # unless another test's processor had already cached this version, in which case there was no load).
        assert loads in ([], [SAMPLE_MACS[0]])
        assert redis_hits(daemon) == hits + 1
    finally:
        store.close()
