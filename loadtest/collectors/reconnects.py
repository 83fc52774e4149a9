"""Reconnect recovery: from a drop to the first tick of the new session.

Each drop opens a :class:`Recovery` that the player carries; it records attempts and 429s met on
the way and ends as recovered (with its time) or gave-up.
"""

from __future__ import annotations

import time

from loadtest.collectors.aggregates import Aggregator

NAME = "reconnect"


class Recovery:
    __slots__ = ("attempts", "cause", "limited", "started")

    def __init__(self, cause: str) -> None:
        self.cause = cause
        self.started = time.monotonic()
        self.attempts = 0
        self.limited = 0


class ReconnectCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def dropped(self, cause: str) -> Recovery:
        b = self.agg.bucket()
        b.counts["dropped"] += 1
        b.counts[f"dropped:{cause}"] += 1
        return Recovery(cause)

    def attempt(self, recovery: Recovery) -> None:
        recovery.attempts += 1
        self.agg.count("attempts")

    def limited(self, recovery: Recovery) -> None:
        recovery.limited += 1
        self.agg.count("limited")

    def recovered(self, recovery: Recovery) -> None:
        b = self.agg.bucket()
        b.counts["recovered"] += 1
        b.observe("recovery_ms", max(1.0, (time.monotonic() - recovery.started) * 1000))
        b.observe("attempts_count", max(1, recovery.attempts))

    def resumed(self) -> None:
        """A dropped session came back with the server's resume credential (no new matchmaking)."""
        self.agg.count("resumed")

    def resume_refused(self, reason: str) -> None:
        """The server refused the resume credential; the player matchmakes afresh."""
        b = self.agg.bucket()
        b.counts["resume_refused"] += 1
        b.counts[f"resume_refused:{reason}"] += 1

    def gave_up(self, recovery: Recovery) -> None:
        self.agg.count("gave_up")

    def storm(self, side: str, dropped: int | None) -> None:
        """A storm was set off (``dropped`` as far as the side that did it knows)."""
        b = self.agg.bucket()
        b.counts["storms"] += 1
        b.counts[f"storm:{side}"] += 1
        if dropped is not None:
            b.counts["storm_dropped"] += dropped
