"""HTTP requests as Locust reports them, kept in our own mergeable histograms.

Locust's response-time buckets round percentiles (Locust issue #1563), so per-endpoint latency
and status counts are kept here too, per second, with the same precision as everything else.

Requests are recorded under the path they went to (as Locust's tables show them); the summary
names them by the flow's step (``token``, ``join``), with the path beside it, so a gate such as
``http.join.p95_ms < 250`` fits any backend of this shape whatever its paths. The run's own
protocol settings, read back from the run folder, say which path is which step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from loadtest.collectors.aggregates import Aggregator, Bucket, hist_unit, new_histogram
from loadtest.collectors.base import Context, Reducer, Row, Section, ms, register
from loadtest.collectors.keys import Family

NAME = "http"
REQUESTS = Family("requests", ("name",), greedy="name")
FAILURES = Family("failures", ("name",), greedy="name")
STATUS = Family("status", ("name", "code"), greedy="name")
LATENCY = Family("latency", ("name",), greedy="name", suffix="_us")
STATUS_CLASSES = ("status_2xx", "status_4xx", "status_429", "status_5xx", "status_0", "status_other")
log = logging.getLogger(__name__)


def step_namer(settings: Mapping[str, Any]) -> Callable[[str], str]:
    """``path -> step name`` for the run these settings (as recorded in ``run.json``) describe.

    A path outside the flow keeps its path as its name. Settings that no longer validate (a run
    folder older than this code) fall back to the reference protocol's steps.
    """
    keys = ("protocol", "protocol_kind", "protocol_options")
    return _namer(json.dumps({k: settings.get(k) for k in keys if k in settings}, sort_keys=True, default=str))


@lru_cache(maxsize=16)
def _namer(recorded: str) -> Callable[[str], str]:
    from loadtest.adapters import protocol_for
    from loadtest.adapters.protocol import Protocol, ProtocolConfig
    from loadtest.config.settings import PlayerSettings

    values = json.loads(recorded)
    try:
        protocol = protocol_for(PlayerSettings.from_dict(values))
    except Exception as exc:  # an old or foreign run folder: name its steps as best we can
        log.debug("steps of a run named by the reference protocol: %s", exc)
        fields = set(ProtocolConfig.field_names())
        config = {k: v for k, v in (values.get("protocol") or {}).items() if k in fields and isinstance(v, str)}
        protocol = Protocol(ProtocolConfig(**config))

    def name(path: str) -> str:
        return protocol.step_of(path) or path

    return name


class HttpCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response: Any = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if request_type == "WS":
            return
        b = self.agg.bucket()
        b.counts[REQUESTS(name)] += 1
        status = getattr(response, "status_code", None) or 0
        b.counts[STATUS(name, status)] += 1
        if exception is not None:
            b.counts[FAILURES(name)] += 1
        b.observe(LATENCY(name), max(1.0, response_time * 1000))


def status_class(code: str) -> str:
    try:
        n = int(code)
    except ValueError:
        return "status_other"
    if n == 0:
        return "status_0"
    if n == 429:
        return "status_429"
    return {2: "status_2xx", 4: "status_4xx", 5: "status_5xx"}.get(n // 100, "status_other")


class HttpStep(Section):
    #: The path(s) the step's requests went to on this backend (", "-joined when several).
    path: str
    count: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    status: dict[str, int]
    peak_per_s: int


@register
class HttpReducer(Reducer):
    name = NAME
    models = {"http": dict[str, HttpStep]}
    sections = ("http",)
    table = "http"
    columns = ("endpoint", "requests", "failures", *STATUS_CLASSES, "p50_ms", "p95_ms", "p99_ms")
    int_columns = ("requests", "failures", *STATUS_CLASSES)
    text_columns = ("endpoint",)

    def __init__(self) -> None:
        super().__init__()
        #: The most requests any one second saw, per step: how hard the run really pushed.
        self.peak: dict[str, int] = {}

    def fact(self, second: int, bucket: Bucket) -> dict[str, int]:
        return {name: int(value) for (name,), value in REQUESTS.items(bucket.counts)}

    def observe(self, second: int, fact: dict[str, int]) -> None:
        for name, requests in fact.items():
            self.peak[name] = max(self.peak.get(name, 0), requests)

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        per: dict[str, dict[str, Any]] = {}
        for (name,), value in REQUESTS.items(bucket.counts):
            per.setdefault(name, {})["requests"] = int(value)
        for (name,), value in FAILURES.items(bucket.counts):
            per.setdefault(name, {})["failures"] = int(value)
        for (name, code), value in STATUS.items(bucket.counts):
            row = per.setdefault(name, {})
            cls = status_class(code)
            row[cls] = row.get(cls, 0) + int(value)
        rows = []
        for name in sorted(per):
            hist = bucket.hists.get(LATENCY(name))
            p50, p95, p99 = (ms(hist, p, digits=None) for p in (50, 95, 99))
            rows.append({"endpoint": name, **per[name], "p50_ms": p50, "p95_ms": p95, "p99_ms": p99})
        return rows

    def summarise(self, ctx: Context) -> dict[str, Any]:
        c, h = self.total.counts, self.total.hists
        step_of = step_namer(ctx.settings)
        paths: dict[str, list[str]] = {}
        for path in sorted(REQUESTS.by(c)):
            paths.setdefault(step_of(path), []).append(path)
        out = {}
        for step in sorted(paths):
            # Several paths of one step (Colyseus's create and join-by-id) are one step's numbers.
            hist = None
            status: dict[str, int] = {}
            count = failures = 0
            for path in paths[step]:
                count += int(c.get(REQUESTS(path), 0))
                failures += int(c.get(FAILURES(path), 0))
                one = h.get(LATENCY(path))
                if one is not None:
                    if hist is None:
                        hist = new_histogram(hist_unit(LATENCY(path)))
                    hist.add(one)
            for (path, code), value in STATUS.items(c):
                if path in paths[step]:
                    status[code] = status.get(code, 0) + int(value)
            out[step] = {
                "path": ", ".join(paths[step]),
                "count": count,
                "failures": failures,
                "p50_ms": ms(hist, 50),
                "p95_ms": ms(hist, 95),
                "p99_ms": ms(hist, 99),
                "status": dict(sorted(status.items())),
                # Per path: seconds of two paths need not coincide, and this is what one second saw.
                "peak_per_s": max(self.peak.get(path, 0) for path in paths[step]),
            }
        return {"http": out}
