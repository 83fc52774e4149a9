"""Reconnect policies: how long a player waits before its next attempt.

``exponential`` is what a well-behaved client does (base x multiplier^attempt, capped, plus a little
random jitter so a crowd spreads out); ``full`` is AWS's "full jitter" (uniform between zero and the
capped exponential); ``none`` retries at once, which is how a thundering herd is made.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import Field, model_validator

from loadtest.config.model import Model, Problem, Seconds
from loadtest.errors import UsageError

KINDS = ("exponential", "full", "none")


class PolicyError(UsageError):
    """Raised for a reconnect policy that cannot work (an unknown kind, a negative delay, jitter
    bounds the wrong way round); the message names the value and what is allowed."""


class ReconnectPolicy(Model):
    """Also read from a scenario's ``[player.reconnect]`` table, where ``jitter = [min, max]``."""

    error = PolicyError
    extra_keys = ("jitter",)

    kind: Literal[KINDS] = Field("exponential", description="reconnect policy")
    base: Seconds = Field(1.0, gt=0, description="first backoff delay, s")
    multiplier: float = Field(2.0, gt=1, le=10, description="backoff multiplier")
    cap: Seconds = Field(30.0, gt=0, description="longest backoff delay, s, at least base")
    jitter_min: Seconds = Field(0.1, ge=0, description="least jitter added to a delay, s")
    jitter_max: Seconds = Field(0.5, ge=0, description="most jitter added to a delay, s")
    #: Attempts after a drop before the player gives up (and counts as gave-up).
    max_attempts: int = Field(10, ge=1, description="attempts before giving up")

    @classmethod
    def key_of(cls, loc: tuple[str | int, ...]) -> str:
        return "reconnect policy: " + ".".join(map(str, loc)) if loc else "reconnect policy"

    @model_validator(mode="before")
    @classmethod
    def _jitter(cls, data: Any) -> Any:
        """``jitter = [min, max]`` (scenario) or ``"min,max"`` (--lt-reconnect-jitter)."""
        if not isinstance(data, dict) or "jitter" not in data:
            return data
        data = dict(data)
        jitter = data.pop("jitter")
        if isinstance(jitter, str):
            jitter = [part.strip() for part in jitter.split(",")]
            jitter = jitter * 2 if len(jitter) == 1 else jitter
        if not isinstance(jitter, list | tuple) or len(jitter) != 2:
            raise Problem("jitter", f"must be [min, max] seconds, got {jitter!r}")
        data["jitter_min"], data["jitter_max"] = jitter
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ReconnectPolicy:
        if self.cap < self.base:
            raise Problem("cap", f"must be >= base ({self.base:g} s), got {self.cap:g}")
        if self.jitter_min > self.jitter_max:
            raise Problem("jitter_max", f"must be >= jitter_min ({self.jitter_min:g} s), got {self.jitter_max:g}")
        return self

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = the first retry)."""
        rng = rng or random
        if self.kind == "none":
            return 0.0
        ceiling = min(self.cap, self.base * self.multiplier ** max(0, attempt - 1))
        if self.kind == "full":
            return rng.uniform(0.0, ceiling)
        return ceiling + rng.uniform(self.jitter_min, self.jitter_max)
