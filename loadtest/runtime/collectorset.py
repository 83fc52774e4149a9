"""The collectors of one Locust process: one of each, fed by its players, probes and engine.

Players and probes record into these from greenlets; :class:`~loadtest.runtime.records.RecordFlow`
drains the closed seconds of the gevent-side ones. The tick collector is the engine's: it lives on
the engine's thread and hands its records over itself.
"""

from __future__ import annotations

from loadtest.collectors.cors import CorsCollector
from loadtest.collectors.generator import GeneratorCollector
from loadtest.collectors.http import HttpCollector
from loadtest.collectors.ratelimit import RateLimitCollector, RateLimitProbeCollector
from loadtest.collectors.reconnects import ReconnectCollector
from loadtest.collectors.replay import ReplayCollector
from loadtest.collectors.sessions import SessionCollector
from loadtest.collectors.ticks import TickCollector


class CollectorSet:
    def __init__(self, worker_id: str) -> None:
        self.sessions = SessionCollector()
        self.rate_limit = RateLimitCollector()
        self.reconnect = ReconnectCollector()
        self.replay = ReplayCollector()
        self.http = HttpCollector()
        self.generator = GeneratorCollector(worker_id)
        self.cors = CorsCollector()
        self.rate_limit_probe = RateLimitProbeCollector(self.rate_limit.agg)
        #: The engine's, made with the engine (its clock-offset mode depends on the target).
        self.ticks: TickCollector | None = None
        #: The collectors fed from greenlets, drained by the record flow each second.
        self.gevent_side = [
            self.sessions,
            self.rate_limit,
            self.reconnect,
            self.replay,
            self.http,
            self.generator,
            self.cors,
        ]
