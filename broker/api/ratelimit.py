"""Per-caller rate limits: a token bucket in memory for each partner (or other key)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.exceptions import BrokerError

__all__ = ["RateLimited", "RateLimiter"]


class RateLimited(BrokerError):
    """A caller sent more requests than its bucket allows (429)."""

    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit reached; retry after {retry_after:.1f} s")
        #: Seconds until one request's worth of tokens is back.
        self.retry_after = retry_after


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key: ``rate`` requests per second on average, ``burst`` at once.

    In memory, per process: with N API processes a partner gets N times the rate, so set
    the rate per process. Used from the event loop only, so no lock is needed.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        """Allow ``rate`` per second, bursts of ``burst``; forget idle keys past ``max_keys``."""
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket.

        Raises:
            RateLimited: the bucket is empty; says how long until it is not.
        """
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if bucket.tokens < 1.0:
            raise RateLimited((1.0 - bucket.tokens) / self._rate)
        bucket.tokens -= 1.0

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely carries no state worth keeping.
        refill = self._burst / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill]:
            del self._buckets[key]
