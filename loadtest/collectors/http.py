"""HTTP requests as Locust reports them, kept in our own mergeable histograms.

Locust's response-time buckets round percentiles (Locust issue #1563), so per-endpoint latency
and status counts are kept here too, per second, with the same precision as everything else.
"""

from __future__ import annotations

from typing import Any

from loadtest.collectors.aggregates import Aggregator

NAME = "http"


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
        b.counts[f"requests:{name}"] += 1
        status = getattr(response, "status_code", None) or 0
        b.counts[f"status:{name}:{status}"] += 1
        if exception is not None:
            b.counts[f"failures:{name}"] += 1
        b.observe(f"latency:{name}_us", max(1.0, response_time * 1000))
