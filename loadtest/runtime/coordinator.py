"""What the coordinating process does besides the players: probes, storms and target scrapes.

The coordinator is the master, or the single process without workers. Its probes run beside the
players for the whole test; storms fire at their scheduled second (a client-side storm is a
message to every worker, each dropping its own share); it scrapes the target's ``/metrics`` at
the start and every ``scrape_interval`` (the ground truth the report checks its numbers against;
the record flow writes the scrapes and takes the last one).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment

if TYPE_CHECKING:
    from loadtest.config.settings import Storm
    from loadtest.runtime.harness import Harness

log = logging.getLogger(__name__)

#: The custom message the master tells its workers to drop a share of their sessions with.
STORM_MESSAGE = "loadtest:storm"


class Coordinator:
    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self._loops: list[gevent.Greenlet] = []
        if harness.role == "worker":
            harness.environment.runner.register_message(STORM_MESSAGE, self._on_storm)

    def stop(self) -> None:
        """The test stopped: end every probe, scheduled storm and scrape loop."""
        for g in self._loops:
            g.kill(block=False)
        self._loops = []

    # -- probes and storms ----------------------------------------------------------------------

    def start_probes(self) -> None:
        from loadtest.adapters import get as adapter_for
        from loadtest.probes.cors import CorsProbe

        h = self.harness
        adapter = adapter_for(h.settings.protocol_kind)
        ReplayProbe, RateLimitProbe = adapter.probe_class("replay"), adapter.probe_class("rate_limit")
        host, settings, probes = h.environment.host or "", h.settings, h.settings.probes
        if not host:
            return
        collectors = h.collectors
        if probes.replay_rate > 0:
            replay = ReplayProbe(host, settings, h.protocol, h.engine, collectors.replay)
            self._loops.append(gevent.spawn(replay.run, probes.replay_rate))
        if probes.rate_limit_endpoint:
            probe = RateLimitProbe(host, settings, h.protocol, collectors.rate_limit_probe)
            self._loops.append(gevent.spawn(probe.run))
        if probes.cors_origins:
            self._loops.append(gevent.spawn(CorsProbe(host, settings, h.protocol, collectors.cors).run))
        for storm in settings.storms:
            self._loops.append(gevent.spawn_later(storm.at, self._fire_storm, storm))

    def _fire_storm(self, storm: Storm) -> None:
        from loadtest.probes.storms import StormError, fire

        h = self.harness
        try:
            fire(storm, h.environment.host or "", h.settings, h.collectors.reconnect, self._drop_clients)
        except StormError as exc:
            log.error("loadtest: storm at %gs (%s) not carried out: %s", storm.at, storm.side, exc)
            h.collectors.reconnect.storm_failed(str(exc), at=storm.at)

    def _drop_clients(self, fraction: float) -> int | None:
        h = self.harness
        if h.role == "master":
            h.environment.runner.send_message(STORM_MESSAGE, {"fraction": fraction})
            return None  # each worker drops its own share; the recoveries are what count
        return h.engine.drop(fraction)

    def _on_storm(self, environment: Environment, msg: Any, **_: Any) -> None:
        """A worker's half of a client-side storm."""
        engine = self.harness.started_engine
        if engine is not None:
            engine.drop(float(msg.data["fraction"]))

    # -- scrapes of the target ------------------------------------------------------------------

    def start_scraping(self) -> None:
        """Scrape now and, if scraping is on, every ``scrape_interval`` until the test stops (the
        record flow writes each scrape and takes the last one when the run folder is finished)."""
        self.harness.flow.scrape("start")
        if self.harness.settings.scrape_metrics:
            self._loops.append(gevent.spawn(self._scrape_loop))

    def _scrape_loop(self) -> None:
        while True:
            gevent.sleep(self.harness.settings.scrape_interval)
            self.harness.flow.scrape("during")
