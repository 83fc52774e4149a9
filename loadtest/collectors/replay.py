"""Replay and forgery probes: every attempt to reuse or fake a credential, and its verdict.

A correct backend rejects every kind; an ``accepted`` count above zero is a finding.
"""

from __future__ import annotations

from loadtest.collectors.aggregates import Aggregator

NAME = "replay"
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

    def verdict(self, kind: str, accepted: bool) -> None:
        b = self.agg.bucket()
        b.counts[f"attempt:{kind}"] += 1
        b.counts[f"{'accepted' if accepted else 'rejected'}:{kind}"] += 1

    def refused(self, where: str, reason: str) -> None:
        """One refusal as the server worded it (``ticket``: 403 reason; ``jwt``: 401 reason), so our
        counts can be checked against the server's own ``tickets_rejected`` / ``jwt_rejections``."""
        self.agg.count(f"refused_{where}:{reason}")

    def skipped(self, kind: str, why: str) -> None:
        """A probe that could not be carried out (no secret to sign with, a 429 while setting up)."""
        self.agg.count(f"skipped:{kind}:{why}")
