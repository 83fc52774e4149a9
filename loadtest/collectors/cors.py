"""CORS preflight checks, as a browser build of the game would make them.

A web export lives or dies by these: a missing allow header, a method or header not allowed, a
wildcard origin granted together with credentials, or an origin that should be refused but is
allowed are each a finding, per origin and endpoint.
"""

from __future__ import annotations

from typing import Any

from loadtest.collectors.aggregates import Aggregator
from loadtest.collectors.base import Context, Reducer, Section, register
from loadtest.collectors.keys import Family

NAME = "cors"
#: ``where`` is ``"<origin> <path>"``: an origin holds ``:`` and a path no space.
CHECKED = Family("checked", ("where",), greedy="where")
OK = Family("ok", ("where",), greedy="where")
FINDING = Family("finding", ("kind", "where"), greedy="where")


class CorsCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def checked(self, origin: str, path: str, findings: list[str]) -> None:
        b = self.agg.bucket()
        where = f"{origin} {path}"
        b.counts[CHECKED(where)] += 1
        if not findings:
            b.counts[OK(where)] += 1
        for finding in findings:
            b.counts[FINDING(finding, where)] += 1


class CorsFinding(Section):
    finding: str
    origin: str
    path: str


class CorsSection(Section):
    checked: int
    ok: int
    findings: list[CorsFinding]


@register
class CorsReducer(Reducer):
    name = NAME
    models = {"cors": CorsSection | None}
    sections = ("cors",)

    def summarise(self, ctx: Context) -> dict[str, Any]:
        c = self.total.counts
        if not c:
            return {"cors": None}
        found = sorted(FINDING.items(c), key=lambda item: FINDING(*item[0]))
        return {
            "cors": {
                "checked": CHECKED.total(c),
                "ok": OK.total(c),
                "findings": [
                    {"finding": kind, "origin": where.rsplit(" ", 1)[0], "path": where.rsplit(" ", 1)[1]}
                    for (kind, where), _ in found
                ],
            }
        }
