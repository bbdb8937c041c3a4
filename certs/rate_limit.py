"""Token buckets: one per client key (the client IP) and one shared by every client.

Pure and thread-safe; time comes from an injected monotonic clock, so tests need no sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` tokens per second; one request takes one token."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of tokens per second, got {rate!r}")
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be at least 1 token, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def _refill(self, now: float) -> None:
        # A clock that goes back never adds tokens (and never removes any).
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def is_full(self, now: float) -> bool:
        return self.tokens(now) >= self.burst

    def wait_time(self, now: float, cost: float = 1.0) -> float:
        """Seconds until `cost` tokens are there; 0 when they already are."""
        missing = cost - self.tokens(now)
        return 0.0 if missing <= 0 else missing / self.rate

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.tokens(now) >= cost:
            self._tokens -= cost
            return True
        return False


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    # Which bucket refused: the client's own or the one every client shares; None when allowed.
    scope: Literal["client", "global"] | None = None
    retry_after: float = 0.0  # seconds until a retry can succeed (as far as this limiter knows)

    @property
    def retry_after_header(self) -> str:
        """The Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimiter:
    """A request is allowed only when both its client's bucket and the global bucket have a token;
    then it takes one from each. A refused request takes nothing, so a client that keeps hammering
    cannot push its own wait further out, but cannot get through either.

    At most `max_clients` client buckets are kept: full buckets (equivalent to a fresh one) are dropped
    first, then the least recently used.
    """

    def __init__(
        self,
        per_client_rate: float,
        per_client_burst: float,
        global_rate: float,
        global_burst: float,
        *,
        max_clients: int = 10000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, got {max_clients!r}")
        self._clock = clock
        self._client_rate = per_client_rate
        self._client_burst = per_client_burst
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, TokenBucket] = OrderedDict()
        # Validates the per-client numbers now rather than on the first request.
        TokenBucket(per_client_rate, per_client_burst, 0.0)
        self._global = TokenBucket(global_rate, global_burst, clock())

    def check(self, client: str) -> RateDecision:
        with self._lock:
            now = self._clock()
            bucket = self._clients.get(client)
            if bucket is None:
                bucket = TokenBucket(self._client_rate, self._client_burst, now)
                self._remember(client, bucket, now)
            else:
                self._clients.move_to_end(client)
            if bucket.tokens(now) < 1:
                return RateDecision(False, "client", bucket.wait_time(now))
            if self._global.tokens(now) < 1:
                return RateDecision(False, "global", self._global.wait_time(now))
            bucket.take(now)
            self._global.take(now)
            return RateDecision(True)

    def tracked_clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def _remember(self, client: str, bucket: TokenBucket, now: float) -> None:
        if len(self._clients) >= self._max_clients:
            for key in [key for key, known in self._clients.items() if known.is_full(now)]:
                del self._clients[key]
            while len(self._clients) >= self._max_clients:
                self._clients.popitem(last=False)
        self._clients[client] = bucket


__all__ = ["RateDecision", "RateLimiter", "TokenBucket"]
