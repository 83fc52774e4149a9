"""Keyed token buckets with the ``Retry-After`` a client needs to back off correctly.

The bucket arithmetic is falconry's ``token-bucket``; what this adds is the answer to "how long
until the next request would be allowed", which is what a 429 must carry.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import token_bucket

from loadtest.backend.config import RateLimit


class _EvictingStorage(token_bucket.MemoryStorage):
    """token-bucket's in-memory storage, forgetting buckets that have refilled completely.

    A bucket left alone for ``burst / rate`` seconds is full, which is exactly what a bucket
    created afresh is: forgetting it changes no answer, and memory stays bounded by the keys
    seen within that window instead of every player id and address ever seen (a run of 200,000
    players left ~40 MB behind). Buckets are kept in order of last use, so each call checks
    only the oldest few.
    """

    def __init__(self, idle_after: float) -> None:
        super().__init__()
        self._buckets: OrderedDict[str | bytes, list[float]] = OrderedDict()
        self._idle_after = idle_after

    def replenish(self, key: str | bytes, rate: float, capacity: int) -> None:
        buckets = self._buckets
        if key in buckets:
            buckets.move_to_end(key)
        super().replenish(key, rate, capacity)
        horizon = time.monotonic() - self._idle_after
        while buckets:
            oldest = next(iter(buckets))
            if oldest == key or buckets[oldest][1] > horizon:
                break
            del buckets[oldest]

    def __len__(self) -> int:
        return len(self._buckets)


class KeyedLimiter:
    """One token bucket per key (a client IP, a player id) sharing one rate and burst."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._storage = _EvictingStorage(limit.burst / limit.rate)
        self._limiter = token_bucket.Limiter(limit.rate, limit.burst, self._storage)

    def check(self, key: str) -> int | None:
        """Take a token for ``key``; return ``None`` if allowed, else whole seconds to wait.

        ``Retry-After`` is whole seconds (RFC 9110), rounded up so a client that honours it is
        never refused again for having come back too early.
        """
        if self._limiter.consume(key):
            return None
        missing = 1.0 - self._storage.get_token_count(key)
        return max(1, math.ceil(missing / self.limit.rate))

    def __len__(self) -> int:
        """Keys with a bucket still refilling (idle ones are forgotten)."""
        return len(self._storage)
