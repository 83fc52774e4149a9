"""Reconnect recovery: from a drop to the first tick of the new session.

Each drop opens a :class:`Recovery` that the player carries; it records attempts and 429s met on
the way and ends as recovered (with its time) or gave-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from loadtest.collectors.aggregates import Aggregator, Bucket
from loadtest.collectors.base import Context, Reducer, Row, Section, max_of, ms, register
from loadtest.collectors.keys import Family

NAME = "reconnect"
DROPPED, RECOVERED, ATTEMPTS, LIMITED = Family("dropped"), Family("recovered"), Family("attempts"), Family("limited")
GAVE_UP, RESUMED = Family("gave_up"), Family("resumed")
DROPPED_BY = Family("dropped", ("cause",), greedy="cause")
RESUME_REFUSED, RESUME_REFUSED_BY = Family("resume_refused"), Family("resume_refused", ("reason",), greedy="reason")
STORMS, STORM_SIDE = Family("storms"), Family("storm", ("side",), greedy="side")
STORM_FAILED, STORM_DROPPED = Family("storm_failed"), Family("storm_dropped")
#: Why a scheduled storm failed, by its planned second: the integrity section names the status or exit code.
STORM_FAILED_WHY = Family("storm_failed", ("at", "why"), greedy="why")
RECOVERY = Family("recovery_ms")


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
        b.counts[DROPPED()] += 1
        b.counts[DROPPED_BY(cause)] += 1
        return Recovery(cause)

    def attempt(self, recovery: Recovery) -> None:
        recovery.attempts += 1
        self.agg.count(ATTEMPTS())

    def limited(self, recovery: Recovery) -> None:
        recovery.limited += 1
        self.agg.count(LIMITED())

    def recovered(self, recovery: Recovery) -> None:
        b = self.agg.bucket()
        b.counts[RECOVERED()] += 1
        b.observe(RECOVERY(), max(1.0, (time.monotonic() - recovery.started) * 1000))

    def resumed(self) -> None:
        """A dropped session came back with the server's resume credential (no new matchmaking)."""
        self.agg.count(RESUMED())

    def resume_refused(self, reason: str) -> None:
        """The server refused the resume credential; the player matchmakes afresh."""
        b = self.agg.bucket()
        b.counts[RESUME_REFUSED()] += 1
        b.counts[RESUME_REFUSED_BY(reason)] += 1

    def gave_up(self, recovery: Recovery) -> None:
        self.agg.count(GAVE_UP())

    def storm(self, side: str, dropped: int | None) -> None:
        """A storm was set off (``dropped`` as far as the side that did it knows)."""
        b = self.agg.bucket()
        b.counts[STORMS()] += 1
        b.counts[STORM_SIDE(side)] += 1
        if dropped is not None:
            b.counts[STORM_DROPPED()] += dropped

    def storm_failed(self, why: str | None = None, at: float | None = None) -> None:
        """A scheduled storm could not be set off (its trigger failed; ``why`` says how)."""
        b = self.agg.bucket()
        b.counts[STORM_FAILED()] += 1
        if why is not None and at is not None:
            b.counts[STORM_FAILED_WHY(repr(float(at)), why.replace("\n", " "))] += 1


def recoveries(b: Bucket) -> dict[str, Any]:
    """Drops and how the players came back, for the whole run or from one storm to the next."""
    dropped, recovered = int(b.counts.get(DROPPED(), 0)), int(b.counts.get(RECOVERED(), 0))
    rec = b.hists.get(RECOVERY())
    return {
        "dropped": dropped,
        "recovered": recovered,
        "recovered_ratio": None if dropped == 0 else round(recovered / dropped, 4),
        "recovery_p50_s": ms(rec, 50),
        "recovery_p95_s": ms(rec, 95),
        "recovery_max_s": max_of(rec, 1000),
        "gave_up": int(b.counts.get(GAVE_UP(), 0)),
    }


@dataclass
class StormSegment:
    """From one storm to the next: what it dropped and how the players came back."""

    second: int
    sides: tuple[str, ...]
    bucket: Bucket = field(default_factory=Bucket)


_TABLE = (DROPPED, ATTEMPTS, RECOVERED, GAVE_UP, LIMITED, STORMS)


class Recoveries(Section):
    dropped: int
    recovered: int
    recovered_ratio: float | None
    recovery_p50_s: float | None
    recovery_p95_s: float | None
    recovery_max_s: float | None
    gave_up: int


class StormRecovery(Recoveries):
    at_s: int
    sides: list[str]


class StormFailure(Section):
    at_s: float
    why: str


class ReconnectSection(Recoveries):
    dropped_by_cause: dict[str, int]
    attempts: int
    limited: int
    resumed: int
    resume_refused: int
    storms: int
    storms_failed: int
    storm_dropped: int
    by_storm: list[StormRecovery]
    storm_failures: list[StormFailure] = []


@register
class ReconnectReducer(Reducer):
    name = NAME
    models = {"reconnect": ReconnectSection}
    sections = ("reconnect",)
    table = "reconnect"
    columns = ("dropped", "attempts", "recovered", "gave_up", "limited", "storms", "recovery_p50_s")
    int_columns = tuple(f.head for f in _TABLE)

    def __init__(self) -> None:
        super().__init__()
        self.storms: list[StormSegment] = []

    def fact(self, second: int, bucket: Bucket) -> tuple[tuple[str, ...] | None, Bucket]:
        """A storm's start (its sides), and the second itself: it counts toward the storm before it."""
        return (tuple(STORM_SIDE.by(bucket.counts)) if bucket.counts.get(STORMS()) else None), bucket

    def observe(self, second: int, fact: tuple[tuple[str, ...] | None, Bucket]) -> None:
        sides, bucket = fact
        if sides is not None:
            self.storms.append(StormSegment(second, sides))
        if self.storms:
            self.storms[-1].bucket.merge(bucket)

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        row: Row = {f.head: int(bucket.counts.get(f(), 0)) for f in _TABLE}
        row["recovery_p50_s"] = ms(bucket.hists.get(RECOVERY()), 50, digits=None)
        return [row]

    def summarise(self, ctx: Context) -> dict[str, Any]:
        c = self.total.counts
        start = ctx.first_second

        def count(family: Family) -> int:
            return int(c.get(family(), 0))

        return {
            "reconnect": {
                **recoveries(self.total),
                "dropped_by_cause": DROPPED_BY.by(c),
                "attempts": count(ATTEMPTS),
                "limited": count(LIMITED),
                "resumed": count(RESUMED),
                "resume_refused": count(RESUME_REFUSED),
                "storms": count(STORMS),
                "storms_failed": count(STORM_FAILED),
                "storm_dropped": count(STORM_DROPPED),
                "storm_failures": [
                    {"at_s": float(at), "why": why}
                    for (at, why), _ in sorted(STORM_FAILED_WHY.items(c), key=lambda item: float(item[0][0]))
                ],
                "by_storm": [
                    {
                        "at_s": seg.second - (start if start is not None else seg.second),
                        "sides": list(seg.sides),
                        **recoveries(seg.bucket),
                    }
                    for seg in self.storms
                ],
            }
        }
