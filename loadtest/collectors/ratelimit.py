"""Rate-limit responses as players meet them: 429s by endpoint, Retry-After, and whether it was honoured.

"Honoured" is measured, not assumed: the next request to the same endpoint from the same player
is compared with the Retry-After it was given. Counts are recorded by path (what the player
requested) and summarised by the flow's step (``token``, ``join``), as the ``http`` section is,
so the same numbers read the same on every backend whatever its paths.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from loadtest.collectors.aggregates import Aggregator, Bucket
from loadtest.collectors.base import Context, Reducer, Row, Section, labelled_rows, ms, register
from loadtest.collectors.keys import Family

NAME = "rate_limit"
LIMITED = Family("429", ("endpoint",), greedy="endpoint")
NO_RETRY_AFTER = Family("no_retry_after", ("endpoint",), greedy="endpoint")
HONOURED = Family("honoured", ("endpoint",), greedy="endpoint")
NOT_HONOURED = Family("not_honoured", ("endpoint",), greedy="endpoint")
RETRY_AFTER = Family("retry_after_ms")
#: The probe's steps: per endpoint and offered rate, ``offered``/``accepted``/``limited``/``other``/
#: ``error`` requests and the step's ``seconds``.
PROBE = Family("probe", ("endpoint", "rate", "field"), greedy="endpoint")
PROBE_RETRY_AFTER = Family("probe_retry_after_ms")
HOARD = Family("hoard", ("endpoint", "field"), greedy="field")
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
        b.counts[LIMITED(endpoint)] += 1
        if retry_after is None:
            b.counts[NO_RETRY_AFTER(endpoint)] += 1
            return
        b.observe(RETRY_AFTER(), max(1.0, retry_after * 1000))
        tracker._pending[endpoint] = (time.monotonic(), retry_after)

    def requesting(self, tracker: RetryTracker, endpoint: str) -> None:
        """Call just before a request goes out: settles whether the last Retry-After was honoured."""
        pending = tracker._pending.pop(endpoint, None)
        if pending is None:
            return
        at, retry_after = pending
        waited = time.monotonic() - at
        self.agg.count((HONOURED if waited >= retry_after - TOLERANCE else NOT_HONOURED)(endpoint))


class RateLimitProbeCollector:
    """The rate-limit probe: per offered-rate step, what was sent, accepted and refused."""

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg

    def step(self, endpoint: str, rate: float, outcome: str, retry_after: float | None = None) -> None:
        b = self.agg.bucket()
        b.counts[PROBE(endpoint, f"{rate:g}", "offered")] += 1
        b.counts[PROBE(endpoint, f"{rate:g}", outcome)] += 1
        if retry_after is not None:
            b.observe(PROBE_RETRY_AFTER(), max(1.0, retry_after * 1000))

    def step_seconds(self, endpoint: str, rate: float, seconds: float) -> None:
        self.agg.count(PROBE(endpoint, f"{rate:g}", "seconds"), seconds)

    def hoarding(self, endpoint: str, asked: int, granted: int, rooms: int, refused: str | None) -> None:
        """Seat hoarding: reservations one token asked for and got (in how many rooms), and what
        stopped it (None: nothing did)."""
        b = self.agg.bucket()
        b.counts[HOARD(endpoint, "asked")] += asked
        b.counts[HOARD(endpoint, "granted")] += granted
        b.counts[HOARD(endpoint, "rooms")] += rooms
        if refused is not None:
            b.counts[HOARD(endpoint, f"refused_{refused}")] += 1


def seat_hoarding(counts: Mapping[str, float]) -> dict[str, Any] | None:
    """The seat-hoarding probe's result from a run's counts, or None if it did not run."""
    fields: dict[str, float] = {}
    endpoint = ""
    for (endpoint, name), value in HOARD.items(counts):  # noqa: B007 - the endpoint is reported
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


def probe_result(rl: Bucket) -> dict[str, Any] | None:
    """Steps of the rate-limit probe, the rate at which 429s began, and the sustained limit."""
    steps: dict[tuple[str, float], dict[str, float]] = {}
    for (endpoint, rate, field), value in PROBE.items(rl.counts):
        steps.setdefault((endpoint, float(rate)), {})[field] = value
    if not steps:
        return None
    rows = []
    for (endpoint, rate), f in sorted(steps.items(), key=lambda kv: kv[0][1]):
        # A step the run's end cut short has no seconds recorded: its rate is unknown, never
        # "accepted in one second" (which read 14/s for a 5/s limit on a busy machine).
        seconds = f.get("seconds")
        rows.append(
            {
                "endpoint": endpoint,
                "offered_rate": rate,
                "sent": int(f.get("offered", 0)),
                "accepted": int(f.get("accepted", 0)),
                "limited": int(f.get("limited", 0)),
                "other": int(f.get("other", 0) + f.get("error", 0)),
                "accepted_rate": round(f.get("accepted", 0) / seconds, 3) if seconds else None,
            }
        )
    first = next((i for i, r in enumerate(rows) if r["limited"]), None)
    limit = None
    if first is not None:
        # After the first limited step the bucket is empty: later steps accept at the sustained rate.
        later = [r["accepted_rate"] for r in rows[first + 1 :] if r["accepted_rate"] is not None]
        later = later or [r for r in [rows[first]["accepted_rate"]] if r is not None]
        later.sort()
        limit = later[len(later) // 2] if later else None
    return {
        "endpoint": rows[0]["endpoint"],
        "steps": rows,
        "limited_from_rate": None if first is None else rows[first]["offered_rate"],
        "estimated_limit_per_s": limit,
        "retry_after_p50_s": ms(rl.hists.get(PROBE_RETRY_AFTER()), 50),
        "enforced": first is not None,
    }


_COLUMNS = {
    "responses_429": LIMITED,
    "without_retry_after": NO_RETRY_AFTER,
    "honoured": HONOURED,
    "not_honoured": NOT_HONOURED,
}


class ProbeStep(Section):
    endpoint: str
    offered_rate: float
    sent: int
    accepted: int
    limited: int
    other: int
    #: Accepted per second over the step; null for a step the run's end cut short.
    accepted_rate: float | None


class ProbeResult(Section):
    endpoint: str
    steps: list[ProbeStep]
    limited_from_rate: float | None
    estimated_limit_per_s: float | None
    retry_after_p50_s: float | None
    enforced: bool


class SeatHoarding(Section):
    endpoint: str
    asked: int
    granted: int
    rooms: int
    stopped_by: str | None


class RateLimitSection(Section):
    responses_429: dict[str, int]
    responses_429_total: int
    without_retry_after: dict[str, int]
    retry_after_p50_s: float | None
    retry_after_honoured: int
    retry_after_not_honoured: int
    retry_after_honoured_ratio: float | None
    probe: ProbeResult | None
    seat_hoarding: SeatHoarding | None
    enforced: bool | None


@register
class RateLimitReducer(Reducer):
    name = NAME
    models = {"rate_limit": RateLimitSection}
    sections = ("rate_limit",)
    table = "rate_limit"
    columns = ("endpoint", "responses_429", "without_retry_after", "honoured", "not_honoured")
    int_columns = ("responses_429", "without_retry_after", "honoured", "not_honoured")
    text_columns = ("endpoint",)

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        # probe:* steps are the probe's, in the summary
        return labelled_rows(bucket.counts, _COLUMNS, "endpoint")

    def summarise(self, ctx: Context) -> dict[str, Any]:
        from loadtest.collectors.http import step_namer  # the http collector owns path -> step

        c = self.total.counts
        honoured, not_honoured = HONOURED.total(c), NOT_HONOURED.total(c)
        step_of = step_namer(ctx.settings)
        limited = _by_step(LIMITED.by(c), step_of)
        probe = probe_result(self.total)
        return {
            "rate_limit": {
                "responses_429": limited,
                "responses_429_total": sum(limited.values()),
                "without_retry_after": _by_step(NO_RETRY_AFTER.by(c), step_of),
                "retry_after_p50_s": ms(self.total.hists.get(RETRY_AFTER()), 50),
                "retry_after_honoured": honoured,
                "retry_after_not_honoured": not_honoured,
                "retry_after_honoured_ratio": None
                if honoured + not_honoured == 0
                else round(honoured / (honoured + not_honoured), 4),
                "probe": probe,
                "seat_hoarding": seat_hoarding(c),
                "enforced": probe["enforced"] if probe else (True if limited else None),
            }
        }


def _by_step(by_path: Mapping[str, int], step_of: Callable[[str], str]) -> dict[str, int]:
    """Counts by path -> counts by the flow's step (several paths of one step add up)."""
    out: dict[str, int] = {}
    for path, value in by_path.items():
        step = step_of(path)
        out[step] = out.get(step, 0) + int(value)
    return out
