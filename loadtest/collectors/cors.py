"""CORS preflight checks, as a browser build of the game would make them.

A web export lives or dies by these: a missing allow header, a method or header not allowed, a
wildcard origin granted together with credentials, or an origin that should be refused but is
allowed are each a finding, per origin and endpoint.
"""

from __future__ import annotations

from loadtest.collectors.aggregates import Aggregator

NAME = "cors"
FINDINGS = (
    "no_answer",
    "missing_allow_origin",
    "wrong_allow_origin",
    "missing_allow_headers",
    "missing_allow_methods",
    "wildcard_with_credentials",
    "refused_origin_allowed",
)


class CorsCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def checked(self, origin: str, path: str, findings: list[str]) -> None:
        b = self.agg.bucket()
        b.counts[f"checked:{origin} {path}"] += 1
        if not findings:
            b.counts[f"ok:{origin} {path}"] += 1
        for finding in findings:
            b.counts[f"finding:{finding}:{origin} {path}"] += 1
