"""Players' networks: what the relay did, and what the server did about frozen and half-open players.

The recording half samples the process's relay (:mod:`loadtest.runtime.relay`) once a second:
its traffic and its own cost (delay it added, how late it was, its thread's CPU), the connections
each fault caught, when the server closed each one (``server_closed_after_s``: the relay sees the
server's FIN or RST arrive), and, each second, the faulted connections the server still holds
once their fault is over (a ghost player and its seat). Players count their rejoins to the same
room, and those refused as full.

The relay's cost is reported here, beside the generator's health, and never judged: a verdict
is about the server.
"""

from __future__ import annotations

import time
from typing import Any

from loadtest.collectors.aggregates import Aggregator, Bucket
from loadtest.collectors.base import Context, Reducer, Section, max_of, ms, register
from loadtest.collectors.keys import Family

NAME = "network"

CONNECTIONS, UPSTREAM_FAILED = Family("connections"), Family("upstream_failed")
BYTES_UP, BYTES_DOWN, CHUNKS = Family("bytes_up"), Family("bytes_down"), Family("chunks")
PLANNED_US, ACTUAL_US = Family("planned_delay_us_sum"), Family("actual_delay_us_sum")
OVERRUN = Family("overrun_max", suffix="_us")
CPU_US = Family("relay_cpu_us")
CAUGHT = Family("caught", ("kind",))
CLOSED = Family("server_closed", ("kind",))
CLOSE_AFTER = Family("close_after", ("kind",), suffix="_ms")
#: Closed while the fault still lasted: the server noticed by itself (its heartbeat), rather than
#: when the player came back and its new session replaced the ghost.
CLOSED_IN_FAULT = Family("closed_in_fault", ("kind",))
#: Connections the server did not close while their fault lasted (it ended first): a frozen player
#: it kept through the freeze, a half-open one through the spell.
OUTLIVED = Family("outlived", ("kind",))
#: Per second: half-open connections whose fault is over and which the server still holds (the
#: client's side is gone: a ghost player), and their age.
HELD = Family("held", ("kind",))
HELD_AGE = Family("held_age", ("kind",), suffix="_ms")
REJOIN = Family("rejoin", ("outcome",))  # ok, refused_full, other
#: Messages per second each WebSocket session received, by its link: ``clean`` or ``slow`` (any
#: condition), one observation per session per sample, outside faults.
MESSAGE_RATE = Family("message_rate", ("link",), suffix="_centihz")
SLOW_SECONDS = Family("slow_session_seconds")


class NetworkCollector:
    """Fed by the relay sampler (one per process) and by players' rejoins."""

    def __init__(self) -> None:
        self.agg = Aggregator(NAME)
        self._last: dict[str, float] = {}
        self._seen_closed: set[int] = set()
        self._seen_outlived: set[int] = set()
        self._messages: dict[int, int] = {}
        self._sampled_at: float | None = None

    def sample(self, snapshot: dict[str, Any], second: int | None = None, now: float | None = None) -> None:
        """One reading of :meth:`~loadtest.runtime.relay.RelayStats.snapshot`: deltas since the last."""
        b = self.agg.bucket(second)
        now = time.monotonic() if now is None else now
        elapsed = None if self._sampled_at is None else now - self._sampled_at
        self._sampled_at = now
        messages: dict[int, int] = {}
        for link_id, clean, count in snapshot.get("sessions", ()):
            messages[link_id] = count
            before = self._messages.get(link_id)
            if before is not None and elapsed is not None and elapsed >= 0.5:
                b.observe(MESSAGE_RATE("clean" if clean else "slow"), max(1.0, (count - before) / elapsed * 100))
                if not clean:
                    b.counts[SLOW_SECONDS()] += 1
        self._messages = messages
        for family, key, scale in (
            (CONNECTIONS, "connections", 1),
            (UPSTREAM_FAILED, "upstream_failed", 1),
            (BYTES_UP, "bytes_up", 1),
            (BYTES_DOWN, "bytes_down", 1),
            (CHUNKS, "chunks", 1),
            (PLANNED_US, "planned_delay_s", 1e6),
            (ACTUAL_US, "actual_delay_s", 1e6),
            (CPU_US, "cpu_s", 1e6),
        ):
            value = float(snapshot.get(key, 0)) * scale
            delta = value - self._last.get(key, 0.0)
            self._last[key] = value
            if delta > 0:
                b.counts[family()] += round(delta)
        if snapshot.get("overrun_max_ms"):
            b.observe(OVERRUN(), max(1.0, snapshot["overrun_max_ms"] * 1000))
        for kind, n in snapshot.get("faults", {}).items():
            key = f"fault:{kind}"
            delta = n - self._last.get(key, 0)
            self._last[key] = n
            if delta > 0:
                b.counts[CAUGHT(kind)] += delta
        for i, record in enumerate(snapshot.get("records", ())):
            kind, closed_after = record["kind"], record["server_closed_after_s"]
            if closed_after is not None:
                if i not in self._seen_closed:
                    self._seen_closed.add(i)
                    b.counts[CLOSED(kind)] += 1
                    if closed_after <= record["fault_s"] + 0.05:
                        b.counts[CLOSED_IN_FAULT(kind)] += 1
                    b.observe(CLOSE_AFTER(kind), max(1.0, closed_after * 1000))
            elif record.get("ghost", True) and record["fault_s"] < record["age_s"] - 0.5:
                b.counts[HELD(kind)] += 1  # the fault is over, the client gone, the server still holds it
                b.observe(HELD_AGE(kind), max(1.0, record["age_s"] * 1000))
            outlived = closed_after is None or closed_after > record["fault_s"] + 0.05
            if record.get("ended") and outlived and i not in self._seen_outlived:
                self._seen_outlived.add(i)
                b.counts[OUTLIVED(kind)] += 1

    def rejoin(self, outcome: str) -> None:
        self.agg.bucket().counts[REJOIN(outcome)] += 1


class RelayCost(Section):
    routes_connections: int
    upstream_failed: int
    bytes_up: int
    bytes_down: int
    added_delay_mean_ms: float | None
    lateness_mean_ms: float | None
    lateness_max_ms: float | None
    cpu_s: float

    @staticmethod
    def empty() -> dict[str, Any]:
        return {
            "routes_connections": 0,
            "upstream_failed": 0,
            "bytes_up": 0,
            "bytes_down": 0,
            "added_delay_mean_ms": None,
            "lateness_mean_ms": None,
            "lateness_max_ms": None,
            "cpu_s": 0.0,
        }


class FaultOutcome(Section):
    connections: int
    server_closed: int
    closed_in_fault: int
    outlived: int
    close_after_p50_s: float | None
    close_after_max_s: float | None
    held_at_end: int
    held_max_s: float | None


class MessageRates(Section):
    """Messages per second delivered to each session, players on clean links apart from the others."""

    clean_p5_hz: float | None
    clean_p50_hz: float | None
    slow_p50_hz: float | None
    slow_session_seconds: int


class Rejoins(Section):
    attempts: int
    ok: int
    refused_full: int


class NetworkSection(Section):
    relay: RelayCost
    faults: dict[str, FaultOutcome]
    #: Faulted connections the server still held in the last second (ghost players), all kinds.
    held_at_end: int
    #: The longest the server kept a frozen or half-open player, closed or not, s.
    held_max_s: float | None
    #: Frozen and half-open connections the server did not close while their fault lasted.
    outlived_faults: int
    message_rate: MessageRates
    rejoin: Rejoins


def relay_cost(total: Bucket) -> dict[str, Any] | None:
    """The relay's own cost from merged seconds: what its delays asked for, how late it was, its
    CPU (the generator section carries it; null when no player went through the relay)."""
    c, h = total.counts, total.hists
    if not c.get(CONNECTIONS()):
        return None
    chunks = int(c.get(CHUNKS(), 0))
    planned, actual = c.get(PLANNED_US(), 0), c.get(ACTUAL_US(), 0)
    return {
        "routes_connections": int(c.get(CONNECTIONS(), 0)),
        "upstream_failed": int(c.get(UPSTREAM_FAILED(), 0)),
        "bytes_up": int(c.get(BYTES_UP(), 0)),
        "bytes_down": int(c.get(BYTES_DOWN(), 0)),
        "added_delay_mean_ms": round(planned / chunks / 1000, 3) if chunks else None,
        "lateness_mean_ms": round((actual - planned) / chunks / 1000, 3) if chunks else None,
        "lateness_max_ms": max_of(h.get(OVERRUN()), 1000),
        "cpu_s": round(c.get(CPU_US(), 0) / 1e6, 3),
    }


@register
class NetworkReducer(Reducer):
    name = NAME
    models = {"network": NetworkSection | None}
    sections = ("network",)

    def __init__(self) -> None:
        super().__init__()
        self.last_held: dict[str, int] = {}
        #: (second, kind, sessions) for every second in which the relay caught sessions under a
        #: fault: which of several storms of one kind caught anyone (the section sums them).
        self.caught: list[tuple[int, str, int]] = []

    def fact(self, second: int, bucket: Bucket) -> dict[str, dict[str, int]]:
        return {
            "held": {kind: int(n) for (kind,), n in HELD.items(bucket.counts)},
            "caught": {kind: int(n) for (kind,), n in CAUGHT.items(bucket.counts)},
        }

    def observe(self, second: int, fact: dict[str, dict[str, int]]) -> None:
        self.last_held = fact["held"]
        self.caught += [(second, kind, n) for kind, n in fact["caught"].items() if n > 0]

    def caught_between(self, kind: str, first: int, last: int) -> int:
        """Sessions the relay put under faults of ``kind`` in seconds ``first`` to ``last``."""
        return sum(n for second, k, n in self.caught if k == kind and first <= second <= last)

    def summarise(self, ctx: Context) -> dict[str, Any]:
        c, h = self.total.counts, self.total.hists
        if not c and not h:
            return {"network": None}
        kinds = sorted({k for (k,), _ in CAUGHT.items(c)} | {k for (k,), _ in HELD.items(c)})
        faults: dict[str, dict[str, Any]] = {}
        longest: list[float] = []
        for kind in kinds:
            close_hist, held_hist = h.get(CLOSE_AFTER(kind)), h.get(HELD_AGE(kind))
            close_max = max_of(close_hist, 1000)
            held_max = max_of(held_hist, 1000)
            longest += [v for v in (close_max, held_max) if v is not None]
            faults[kind] = {
                "connections": int(c.get(CAUGHT(kind), 0)),
                "server_closed": int(c.get(CLOSED(kind), 0)),
                "closed_in_fault": int(c.get(CLOSED_IN_FAULT(kind), 0)),
                "outlived": int(c.get(OUTLIVED(kind), 0)),
                "close_after_p50_s": ms(close_hist, 50, 1000),
                "close_after_max_s": close_max,
                "held_at_end": self.last_held.get(kind, 0),
                "held_max_s": held_max,
            }
        held_kinds = [k for k in kinds if k in ("freeze", "blackhole")]
        rejoin = REJOIN.by(c)
        return {
            "network": {
                "relay": relay_cost(self.total) or RelayCost.empty(),
                "faults": faults,
                "held_at_end": sum(self.last_held.get(k, 0) for k in held_kinds),
                "held_max_s": max(longest) if longest else None,
                "outlived_faults": sum(int(c.get(OUTLIVED(k), 0)) for k in held_kinds),
                "message_rate": {
                    "clean_p5_hz": ms(h.get(MESSAGE_RATE("clean")), 5, 100, 2),
                    "clean_p50_hz": ms(h.get(MESSAGE_RATE("clean")), 50, 100, 2),
                    "slow_p50_hz": ms(h.get(MESSAGE_RATE("slow")), 50, 100, 2),
                    "slow_session_seconds": int(c.get(SLOW_SECONDS(), 0)),
                },
                "rejoin": {
                    "attempts": sum(rejoin.values()),
                    "ok": rejoin.get("ok", 0),
                    "refused_full": rejoin.get("refused_full", 0),
                },
            }
        }
