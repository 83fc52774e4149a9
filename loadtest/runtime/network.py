"""Players' links through the relay, wired into a Locust process without touching the engine.

A player on a bad link (``player.network``), or any player when a network storm is planned, gets a
route of the process's :class:`~loadtest.runtime.relay.Relay`: its WebSocket spec's TCP address
becomes the route's (the URL, and so the Host header, stays the target's) and its HTTP goes
through :class:`RelayAdapter`, which does the same for requests. The relay connects upstream
from the player's own source address. A network storm is a custom message from the master to
every worker, each faulting its own share, as a client-side storm is.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest.collectors.network import NetworkCollector
from loadtest.config.settings import NETWORK_STORMS, NetworkSettings, PlayerSettings, Storm
from loadtest.runtime.engine import SessionSpec
from loadtest.runtime.relay import Conditions, Relay, RelayAdapter

log = logging.getLogger(__name__)

NETWORK_MESSAGE = "loadtest:network-storm"
SAMPLE_INTERVAL = 1.0


class _Process:
    """This process's relay, its collector and its sampler."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.relay = Relay()
        self.collector = NetworkCollector()
        self._sampler: gevent.Greenlet | None = None
        self._attached = False
        self.started: float | None = None  # monotonic time of the test's start
        self._bad: list[tuple[tuple[str, int], Conditions]] = []  # routes on the bad link, and its conditions
        self._stager: gevent.Greenlet | None = None

    def attach(self) -> None:
        """Join the harness's collectors (drained each second by the record flow) and sample."""
        if self._attached:
            return
        self._attached = True
        from loadtest.runtime.harness import Harness

        Harness.of(self.environment).collectors.gevent_side.append(self.collector)
        self._sampler = gevent.spawn(self._sample_forever)

    def sample(self) -> None:
        self.collector.sample(self.relay.stats.snapshot())

    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started

    def add_bad(self, route: tuple[str, int], conditions: Conditions, settings: NetworkSettings) -> None:
        """A route on the bad link: on now if the link's window is open, switched at its edges."""
        self._bad.append((route, conditions))
        if settings.active(self.elapsed()):
            self.relay.set_conditions(route, conditions)
        if (settings.start_s or settings.stop_s is not None) and self._stager is None:
            self._stager = gevent.spawn(self._stage, settings)

    def _stage(self, settings: NetworkSettings) -> None:
        """Switch the bad link on at ``start_s`` and off at ``stop_s`` for every route on it."""
        for edge, on in ((settings.start_s, True), (settings.stop_s, False)):
            if edge is None:
                continue
            gevent.sleep(max(0.0, edge - self.elapsed()))
            for route, conditions in list(self._bad):
                self.relay.set_conditions(route, conditions if on else Conditions())

    def _sample_forever(self) -> None:
        while True:
            gevent.sleep(SAMPLE_INTERVAL)
            self.sample()

    def stop(self) -> None:
        if self._stager is not None:
            self._stager.kill(block=False)
        if self._sampler is not None:
            self.sample()
            self._sampler.kill(block=False)
        self.relay.stop(sleep=gevent.sleep)


_processes: dict[int, _Process] = {}


def process_of(environment: Environment) -> _Process:
    proc = _processes.get(id(environment))
    if proc is None:
        proc = _processes[id(environment)] = _Process(environment)
    return proc


@events.init.add_listener
def _install(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(NETWORK_MESSAGE, _on_message)
    proc = process_of(environment)
    environment.events.test_start.add_listener(lambda **_: setattr(proc, "started", time.monotonic()))
    environment.events.test_stopping.add_listener(lambda **_: _sample_now(environment))
    environment.events.quitting.add_listener(lambda **_: _stop(environment))


def _sample_now(environment: Environment) -> None:
    proc = _processes.get(id(environment))
    if proc is not None and proc.relay.running:
        proc.sample()


def _stop(environment: Environment) -> None:
    proc = _processes.pop(id(environment), None)
    if proc is not None:
        proc.stop()


def _on_message(environment: Environment, msg: Any, **_: Any) -> None:
    proc = _processes.get(id(environment))
    if proc is not None and proc.relay.running:
        d = msg.data
        proc.relay.storm(d["kind"], d["fraction"], d["seconds"], then=d["then"], latency_ms=d["latency_ms"])


# -- which player goes through the relay ---------------------------------------------------------


def wants_relay(settings: PlayerSettings) -> bool:
    net = settings.network
    return net.share > 0 or net.relay_all or any(s.side in NETWORK_STORMS for s in settings.storms)


def on_bad_link(index: int, share: float) -> bool:
    """Every ``1/share``-th player, spread evenly: exactly ``share`` of any run of players."""
    return int((index + 1) * share) > int(index * share)


class PlayerLink:
    """One player's way to the target: direct (``route`` None) or through its relay route."""

    def __init__(self, player: Any) -> None:
        self.route: tuple[str, int] | None = None
        self.bad = False
        settings: PlayerSettings = player.settings
        if not wants_relay(settings):
            return
        net = settings.network
        self.bad = on_bad_link(player.index, net.share)
        proc = process_of(player.environment)
        proc.attach()
        ws = player._ws
        self.route = proc.relay.route((ws.address, ws.port), player.source, Conditions())
        if self.bad:
            conditions = Conditions(net.latency_ms, net.jitter_ms, net.bandwidth_kb_s, net.slow_close_ms)
            proc.add_bad(self.route, conditions, net)
        adapter = RelayAdapter(self.route, ws.hostname)
        player.client.mount("http://", adapter)
        player.client.mount("https://", RelayAdapter(self.route, ws.hostname))
        self.collector = proc.collector

    def spec(self, spec: SessionSpec) -> SessionSpec:
        if self.route is None:
            return spec
        return dataclasses.replace(spec, address=self.route[0], port=self.route[1], local_addr=None)


def rejoin_outcome(player: Any, grant: Any) -> None:
    """Count a rejoin to the same room: ok, refused as full (HTTP 409), or other."""
    proc = _processes.get(id(player.environment))
    if proc is None:
        return
    reason = getattr(grant, "reason", None)
    proc.collector.rejoin("ok" if reason is None else "refused_full" if reason == "status_409" else "other")


# -- storms ----------------------------------------------------------------------------------------


def storm(storm: Storm) -> int | None:
    """Set off a network storm in this process, or tell every worker to: how many routes it caught
    (None from a master: each worker faults its own share)."""
    for proc in list(_processes.values()):
        runner = proc.environment.runner
        data = {
            "kind": storm.side,
            "fraction": storm.fraction,
            "seconds": storm.seconds,
            "then": storm.then,
            "latency_ms": storm.latency_ms,
        }
        if isinstance(runner, MasterRunner):
            runner.send_message(NETWORK_MESSAGE, data)
            return None
        if proc.relay.running:
            return proc.relay.storm(
                storm.side, storm.fraction, storm.seconds, then=storm.then, latency_ms=storm.latency_ms
            )
        return 0
    return 0
