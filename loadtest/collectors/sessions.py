"""Session lifecycle: connects (time, refusals by reason), ends by reason, protocol errors.

An *unexpected* end is any the player did not ask for (a server close, a lost connection), which
is what a storm or a crash looks like from the client.
"""

from __future__ import annotations

from loadtest.collectors.aggregates import Aggregator

NAME = "sessions"


class SessionCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def connected(self, handshake_ms: float) -> None:
        b = self.agg.bucket()
        b.counts["opened"] += 1
        b.observe("connect_us", max(1.0, handshake_ms * 1000))

    def connect_failed(self, reason: str) -> None:
        self.agg.count(f"connect_failed:{reason}")

    def ended(self, reason: str, *, expected: bool, duration_s: float) -> None:
        b = self.agg.bucket()
        b.counts[f"ended:{reason}"] += 1
        if not expected:
            b.counts["unexpected"] += 1
        b.observe("duration_ms", duration_s * 1000)

    def protocol_error(self, where: str, reason: str) -> None:
        self.agg.count(f"protocol_error:{where}:{reason}")
