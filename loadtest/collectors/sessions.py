"""Session lifecycle: connects (time, refusals by reason), ends by reason, protocol errors.

An *unexpected* end is any the player did not ask for (a server close, a lost connection), which
is what a storm or a crash looks like from the client.
"""

from __future__ import annotations

from typing import Any

from loadtest.collectors import ticks
from loadtest.collectors.aggregates import Aggregator, Bucket
from loadtest.collectors.base import Context, Reducer, Row, Section, ms, register
from loadtest.collectors.keys import Family

NAME = "sessions"
OPENED, UNEXPECTED = Family("opened"), Family("unexpected")
CONNECT_FAILED = Family("connect_failed", ("reason",), greedy="reason")
ENDED = Family("ended", ("reason",), greedy="reason")
#: An HTTP step's reply the protocol could not read: where (the step) and why.
PROTOCOL_ERROR = Family("protocol_error", ("where", "reason"), greedy="reason")
CONNECT = Family("connect_us")


class SessionCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def connected(self, handshake_ms: float) -> None:
        b = self.agg.bucket()
        b.counts[OPENED()] += 1
        b.observe(CONNECT(), max(1.0, handshake_ms * 1000))

    def connect_failed(self, reason: str) -> None:
        self.agg.count(CONNECT_FAILED(reason))

    def ended(self, reason: str, *, expected: bool) -> None:
        b = self.agg.bucket()
        b.counts[ENDED(reason)] += 1
        if not expected:
            b.counts[UNEXPECTED()] += 1

    def protocol_error(self, where: str, reason: str) -> None:
        self.agg.count(PROTOCOL_ERROR(where, reason))


def joined(family: Family, counts: dict[str, float]) -> dict[str, int]:
    """Counts of a family by all its labels joined with ``:`` (``where:reason``), sorted."""
    out: dict[str, int] = {}
    for labels, value in family.items(counts):
        key = ":".join(labels)
        out[key] = out.get(key, 0) + int(value)
    return {k: out[k] for k in sorted(out)}


class WsSection(Section):
    sessions_opened: int
    connect_p50_ms: float | None
    connect_p95_ms: float | None
    connect_failed: dict[str, int]
    connect_failed_total: int
    ended: dict[str, int]
    unexpected_disconnects: int
    messages: int


class ProtocolErrorsSection(Section):
    http: dict[str, int]
    ws: dict[str, int]
    total: int


@register
class SessionsReducer(Reducer):
    name = NAME
    models = {"ws": WsSection, "protocol_errors": ProtocolErrorsSection}
    sections = ("ws", "protocol_errors")
    needs = ("ticks",)
    table = "sessions"
    columns = ("opened", "unexpected", "connect_failed", "protocol_errors")
    int_columns = None  # every column, the per-reason ones too

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        c = bucket.counts
        row: Row = {
            "opened": int(c.get(OPENED(), 0)),
            "unexpected": int(c.get(UNEXPECTED(), 0)),
            "connect_failed": CONNECT_FAILED.total(c),
            "protocol_errors": PROTOCOL_ERROR.total(c),
        }
        for reason, n in ENDED.by(c).items():
            row[f"ended_{reason}"] = n
        for reason, n in CONNECT_FAILED.by(c).items():
            row[f"connect_failed_{reason}"] = n
        return [row]

    def summarise(self, ctx: Context) -> dict[str, Any]:
        c, h = self.total.counts, self.total.hists
        tick_counts = ctx.total(ticks.NAME).counts
        failed = CONNECT_FAILED.by(c)
        http_errors, ws_errors = joined(PROTOCOL_ERROR, c), ticks.PROTOCOL_ERROR.by(tick_counts)
        return {
            "ws": {
                "sessions_opened": int(c.get(OPENED(), 0)),
                "connect_p50_ms": ms(h.get(CONNECT()), 50),
                "connect_p95_ms": ms(h.get(CONNECT()), 95),
                "connect_failed": failed,
                "connect_failed_total": sum(failed.values()),
                "ended": ENDED.by(c),
                "unexpected_disconnects": int(c.get(UNEXPECTED(), 0)),
                "messages": int(tick_counts.get(ticks.MESSAGES(), 0)),
            },
            "protocol_errors": {
                "http": http_errors,
                "ws": ws_errors,
                "total": sum(http_errors.values()) + sum(ws_errors.values()),
            },
        }
