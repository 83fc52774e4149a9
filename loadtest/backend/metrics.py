"""The matchmaker's ``/metrics``: its own counters plus every game server's, federated.

Each backend instance has its own registry (never the global one), so several backends can run in
one test process. Game-server metrics are fetched at scrape time and re-exposed under the names
and ``game_server`` labels they were produced with, so one scrape shows the whole backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from loadtest.backend.config import DEFECTS


class _Federated:
    """Re-exposes metric families parsed from the game servers, merged by name."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def load(self, texts: Iterable[str]) -> None:
        merged: dict[str, Metric] = {}
        for text in texts:
            for family in text_string_to_metric_families(text):
                target = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type, family.unit)
                )
                target.samples.extend(family.samples)
        self.families = list(merged.values())

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class BackendMetrics:
    def __init__(self, defects: Iterable[str]) -> None:
        disable_created_metrics()
        self.registry = r = CollectorRegistry()
        self.players = Gauge("gamebackend_players", "Players holding a game session.", registry=r)
        self.rooms = Gauge("gamebackend_rooms", "Open rooms.", registry=r)
        self.requests = Counter(
            "gamebackend_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.tokens_issued = Counter("gamebackend_tokens_issued", "JWTs issued.", registry=r)
        self.jwt_rejections = Counter(
            "gamebackend_jwt_rejections", "Tokens refused at /join, by reason.", ["reason"], registry=r
        )
        self.tickets_issued = Counter("gamebackend_tickets_issued", "Tickets issued by /join.", registry=r)
        self.tickets_consumed = Counter("gamebackend_tickets_consumed", "Tickets accepted at /connect.", registry=r)
        self.tickets_rejected = Counter(
            "gamebackend_tickets_rejected",
            "Tickets refused at /connect, by reason (unknown, used, expired).",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "gamebackend_rate_limited",
            "Requests answered 429, by endpoint and the limit that was hit (ip or player).",
            ["endpoint", "scope"],
            registry=r,
        )
        self.ws_opened = Counter("gamebackend_ws_connections_opened", "Client WebSocket sessions opened.", registry=r)
        self.ws_closed = Counter(
            "gamebackend_ws_connections_closed",
            "Client WebSocket sessions closed, by who closed them.",
            ["by"],
            registry=r,
        )
        self.chaos_disconnects = Counter(
            "gamebackend_chaos_disconnects", "Sessions dropped by the chaos endpoint.", registry=r
        )
        self.chaos_stalls = Counter("gamebackend_chaos_stalls", "Tick-loop stalls ordered.", registry=r)
        active = set(defects)
        defect_info = GaugeMetricFamily(
            "gamebackend_defect", "1 for each defect switched on, 0 for the others.", labels=["defect"]
        )
        for name in sorted(DEFECTS):
            defect_info.add_metric([name], 1.0 if name in active else 0.0)
        self._static = [defect_info]
        self.registry.register(self)
        self.federated = _Federated()
        self.registry.register(self.federated)
        # Pre-create the label sets a harness compares against, so "zero" reads as 0, not absent.
        for reason in ("unknown", "used", "expired"):
            self.tickets_rejected.labels(reason)
        for endpoint, scope in (("/request_token", "ip"), ("/join", "ip"), ("/join", "player")):
            self.rate_limited.labels(endpoint, scope)

    def collect(self) -> Iterator[Metric]:
        return iter(self._static)

    def render(self, game_server_texts: Iterable[str]) -> bytes:
        self.federated.load(game_server_texts)
        return generate_latest(self.registry)
