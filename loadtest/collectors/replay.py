"""Replay and forgery probes: every attempt to reuse or fake a credential, and its verdict.

A correct backend rejects every kind; an ``accepted`` count above zero is a finding.
"""

from __future__ import annotations

from typing import Any

from loadtest.collectors.aggregates import Aggregator, Bucket
from loadtest.collectors.base import Context, Reducer, Row, Section, labelled_rows, register
from loadtest.collectors.keys import Family

NAME = "replay"
ATTEMPT = Family("attempt", ("kind",), greedy="kind")
ACCEPTED = Family("accepted", ("kind",), greedy="kind")
REJECTED = Family("rejected", ("kind",), greedy="kind")
REFUSED_TICKET = Family("refused_ticket", ("reason",), greedy="reason")
REFUSED_JWT = Family("refused_jwt", ("reason",), greedy="reason")
SKIPPED = Family("skipped", ("kind", "why"), greedy="why")
STARTED = Family("started", ("kind",), greedy="kind")
KINDS = (
    "ticket_reuse",
    "ticket_race",
    "ticket_expired",
    "ticket_forged",
    "jwt_alg_none",
    "jwt_bad_signature",
    "jwt_expired",
    "jwt_wrong_audience",
    # Backends that hand out a resume credential (Colyseus reconnection tokens): reuse a used one.
    "reconnect_token_reuse",
)


class ReplayCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)

    def started(self, kind: str) -> None:
        """A probe of ``kind`` began. One that waits (for a ticket to expire) may not end before the
        run does; counting starts lets the plan check tell "never tried" from "never finished"."""
        self.agg.count(STARTED(kind))

    def verdict(self, kind: str, accepted: bool) -> None:
        b = self.agg.bucket()
        b.counts[ATTEMPT(kind)] += 1
        b.counts[(ACCEPTED if accepted else REJECTED)(kind)] += 1

    def refused(self, where: str, reason: str) -> None:
        """One refusal as the server worded it (``ticket``: 403 reason; ``jwt``: 401 reason), so our
        counts can be checked against the server's own ``tickets_rejected`` / ``jwt_rejections``."""
        self.agg.count({"ticket": REFUSED_TICKET, "jwt": REFUSED_JWT}[where](reason))

    def skipped(self, kind: str, why: str) -> None:
        """A probe that could not be carried out (no secret to sign with, a 429 while setting up)."""
        self.agg.count(SKIPPED(kind, why))


_VERDICTS = {"attempts": ATTEMPT, "rejected": REJECTED, "accepted": ACCEPTED}


class KindVerdict(Section):
    attempts: int
    rejected: int
    accepted: int


class ReplaySection(Section):
    refused_ticket: dict[str, int]
    refused_jwt: dict[str, int]
    skipped: dict[str, int]
    #: Probes begun, by kind; a kind begun but with no attempt and no skip did not finish in time.
    started: dict[str, int] = {}
    attempts: int
    rejected: int
    accepted: int
    by_kind: dict[str, KindVerdict]


@register
class ReplayReducer(Reducer):
    name = NAME
    models = {"replay": ReplaySection}
    sections = ("replay",)
    table = "replay"
    columns = ("kind", "attempts", "rejected", "accepted")
    int_columns = ("attempts", "rejected", "accepted")
    text_columns = ("kind",)

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        return labelled_rows(bucket.counts, _VERDICTS, "kind")

    def summarise(self, ctx: Context) -> dict[str, Any]:
        c = self.total.counts
        per = {column: family.by(c) for column, family in _VERDICTS.items()}
        kinds = sorted(set().union(*per.values()))
        skipped: dict[str, int] = {}
        for (kind, why), value in SKIPPED.items(c):
            skipped[f"{kind}:{why}"] = skipped.get(f"{kind}:{why}", 0) + int(value)
        return {
            "replay": {
                "refused_ticket": REFUSED_TICKET.by(c),
                "refused_jwt": REFUSED_JWT.by(c),
                "skipped": dict(sorted(skipped.items())),
                "started": STARTED.by(c),
                "attempts": sum(per["attempts"].values()),
                "rejected": sum(per["rejected"].values()),
                "accepted": sum(per["accepted"].values()),
                "by_kind": {k: {column: per[column].get(k, 0) for column in _VERDICTS} for k in kinds},
            }
        }
