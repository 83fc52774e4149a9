"""Rate-limit responses as players meet them: 429s by endpoint, Retry-After, and whether it was honoured.

"Honoured" is measured, not assumed: the next request to the same endpoint from the same player
is compared with the Retry-After it was given.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from loadtest.collectors.aggregates import Aggregator

NAME = "rate_limit"
#: Scheduling slack: a retry this much earlier than Retry-After still counts as honoured.
TOLERANCE = 0.05


class RetryTracker:
    """Per player: the last 429 per endpoint, until the next request to that endpoint."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, tuple[float, float]] = {}


class RateLimitCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def limited(self, tracker: RetryTracker, endpoint: str, retry_after: float | None) -> None:
        b = self.agg.bucket()
        b.counts[f"429:{endpoint}"] += 1
        if retry_after is None:
            b.counts[f"no_retry_after:{endpoint}"] += 1
            return
        b.observe("retry_after_ms", max(1.0, retry_after * 1000))
        tracker._pending[endpoint] = (time.monotonic(), retry_after)

    def requesting(self, tracker: RetryTracker, endpoint: str) -> None:
        """Call just before a request goes out: settles whether the last Retry-After was honoured."""
        pending = tracker._pending.pop(endpoint, None)
        if pending is None:
            return
        at, retry_after = pending
        waited = time.monotonic() - at
        self.agg.count(f"{'honoured' if waited >= retry_after - TOLERANCE else 'not_honoured'}:{endpoint}")


class RateLimitProbeCollector:
    """The rate-limit probe: per offered-rate step, what was sent, accepted and refused."""

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg

    def step(self, endpoint: str, rate: float, outcome: str, retry_after: float | None = None) -> None:
        b = self.agg.bucket()
        b.counts[f"probe:{endpoint}:{rate:g}:offered"] += 1
        b.counts[f"probe:{endpoint}:{rate:g}:{outcome}"] += 1
        if retry_after is not None:
            b.observe("probe_retry_after_ms", max(1.0, retry_after * 1000))

    def step_seconds(self, endpoint: str, rate: float, seconds: float) -> None:
        self.agg.count(f"probe:{endpoint}:{rate:g}:seconds", seconds)

    def hoarding(self, endpoint: str, asked: int, granted: int, rooms: int, refused: str | None) -> None:
        """Seat hoarding: reservations one token asked for and got (in how many rooms), and what
        stopped it (None: nothing did)."""
        b = self.agg.bucket()
        b.counts[f"hoard:{endpoint}:asked"] += asked
        b.counts[f"hoard:{endpoint}:granted"] += granted
        b.counts[f"hoard:{endpoint}:rooms"] += rooms
        if refused is not None:
            b.counts[f"hoard:{endpoint}:refused_{refused}"] += 1


def seat_hoarding(counts: Mapping[str, float]) -> dict[str, Any] | None:
    """The seat-hoarding probe's result from a run's counts, or None if it did not run."""
    fields: dict[str, float] = {}
    endpoint = ""
    for key, value in counts.items():
        if key.startswith("hoard:"):
            _, endpoint, name = key.split(":", 2)
            fields[name] = fields.get(name, 0) + value
    if not fields:
        return None
    refused = sorted(name[len("refused_") :] for name in fields if name.startswith("refused_"))
    return {
        "endpoint": endpoint,
        "asked": int(fields.get("asked", 0)),
        "granted": int(fields.get("granted", 0)),
        "rooms": int(fields.get("rooms", 0)),
        "stopped_by": refused[0] if refused else None,
    }
