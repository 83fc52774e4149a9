"""Reconnect policies: how long a player waits before its next attempt.

``exponential`` is what a well-behaved client does (base x multiplier^attempt, capped, plus a little
random jitter so a crowd spreads out); ``full`` is AWS's "full jitter" (uniform between zero and the
capped exponential); ``none`` retries at once, which is how a thundering herd is made.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadtest.errors import UsageError

KINDS = ("exponential", "full", "none")


class PolicyError(UsageError):
    """Raised for a reconnect policy that cannot work (an unknown kind, a negative delay, jitter
    bounds the wrong way round); the message names the value and what is allowed."""


@dataclass(frozen=True)
class ReconnectPolicy:
    kind: str = "exponential"
    base: float = 1.0
    multiplier: float = 2.0
    cap: float = 30.0
    jitter_min: float = 0.1
    jitter_max: float = 0.5
    #: Attempts after a drop before the player gives up (and counts as gave-up).
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PolicyError(f"reconnect policy: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.base > 0:
            raise PolicyError(f"reconnect policy: base must be > 0 seconds, got {self.base}")
        if not 1.0 < self.multiplier <= 10.0:
            raise PolicyError(f"reconnect policy: multiplier must be in (1, 10], got {self.multiplier}")
        if self.cap < self.base:
            raise PolicyError(f"reconnect policy: cap ({self.cap}) must be >= base ({self.base})")
        if not 0 <= self.jitter_min <= self.jitter_max:
            raise PolicyError("reconnect policy: need 0 <= jitter_min <= jitter_max")
        if self.max_attempts < 1:
            raise PolicyError("reconnect policy: max_attempts must be >= 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = the first retry)."""
        rng = rng or random
        if self.kind == "none":
            return 0.0
        ceiling = min(self.cap, self.base * self.multiplier ** max(0, attempt - 1))
        if self.kind == "full":
            return rng.uniform(0.0, ceiling)
        return ceiling + rng.uniform(self.jitter_min, self.jitter_max)
