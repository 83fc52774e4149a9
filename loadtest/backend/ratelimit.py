"""Keyed token buckets with the ``Retry-After`` a client needs to back off correctly.

The bucket arithmetic is falconry's ``token-bucket``; what this adds is the answer to "how long
until the next request would be allowed", which is what a 429 must carry.
"""

from __future__ import annotations

import math

import token_bucket

from loadtest.backend.config import RateLimit


class KeyedLimiter:
    """One token bucket per key (a client IP, a player id) sharing one rate and burst."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._storage = token_bucket.MemoryStorage()
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
