"""One harness per Locust process: its settings, collectors and WebSocket engine, and the Locust
events that drive the parts.

The parts, each with one job: :class:`~loadtest.runtime.collectorset.CollectorSet` (what is
measured), :class:`~loadtest.runtime.records.RecordFlow` (where records go: shipping, the run
folder, the live summary, finishing), :class:`~loadtest.runtime.coordinator.Coordinator`
(probes, storms and scrapes of the master or single process) and, with a web UI,
:class:`~loadtest.runtime.webruns.WebRuns` (when each test's run folder is finished). Everything
is wired through Locust's events and ``register_message``; nothing of Locust is patched.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest.adapters.protocol import Protocol
from loadtest.collectors.ratelimit import RateLimitCollector
from loadtest.collectors.reconnects import ReconnectCollector
from loadtest.collectors.sessions import SessionCollector
from loadtest.collectors.ticks import TickCollector
from loadtest.config.settings import PlayerSettings
from loadtest.results.live import Live
from loadtest.runtime.collectorset import CollectorSet
from loadtest.runtime.coordinator import Coordinator
from loadtest.runtime.engine import WebSocketEngine
from loadtest.runtime.records import RecordFlow
from loadtest.runtime.webruns import WebRuns

log = logging.getLogger(__name__)

_harnesses: dict[int, Harness] = {}


def is_loopback_host(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Harness:
    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        runner = environment.runner
        self.role = (
            "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"
        )
        self.worker_id = getattr(runner, "client_id", None) or (
            "master" if self.role == "master" else f"local-{os.getpid()}"
        )
        self._settings: PlayerSettings | None = None
        self._engine: WebSocketEngine | None = None
        self._user_index = 0
        self.collectors = CollectorSet(self.worker_id)
        self.flow = RecordFlow(
            environment,
            self.role,
            self.worker_id,
            self.collectors,
            settings=lambda: self.settings,
            engine=lambda: self._engine,
        )
        self.coordinator = Coordinator(self)
        # With a web UI, each test started from the page is a run of its own: its own folder,
        # live summary, and report when it stops.
        self.web = self.role != "worker" and getattr(environment, "web_ui", None) is not None
        self.runs = WebRuns(self.flow) if self.web else None
        environment.events.request.add_listener(self.collectors.http.on_request)
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.test_stopping.add_listener(self._on_test_stopping)
        environment.events.test_stop.add_listener(self._on_test_stop)
        environment.events.quitting.add_listener(self._on_quitting)

    # -- lookup -----------------------------------------------------------------------------

    @classmethod
    def install(cls, environment: Environment) -> Harness:
        harness = _harnesses.get(id(environment))
        if harness is None:
            harness = _harnesses[id(environment)] = cls(environment)
        return harness

    @classmethod
    def of(cls, environment: Environment) -> Harness:
        return cls.install(environment)

    @property
    def settings(self) -> PlayerSettings:
        # Read lazily: on workers the master's --lt-* options arrive with the first spawn message.
        if self._settings is None:
            self._settings = PlayerSettings.load(self.environment.parsed_options)
        return self._settings

    def next_user_index(self) -> int:
        """A player number unique across the worker processes of one machine, so a source-address
        pool is spread over all of them rather than reused from 0 in every process."""
        local = self._user_index
        self._user_index += 1
        runner = self.environment.runner
        worker = getattr(runner, "worker_index", -1)
        processes = getattr(self.environment.parsed_options, "processes", None) or 0
        if self.role == "worker" and worker >= 0 and processes > 1:
            return local * processes + worker
        return local

    @property
    def protocol(self) -> Protocol:
        from loadtest.adapters import protocol_for

        return protocol_for(self.settings)

    @property
    def engine(self) -> WebSocketEngine:
        """The process's WebSocket engine, started on first use."""
        if self._engine is None:
            host = self.environment.host or ""
            mode = self.settings.clock_offset
            estimate = mode == "estimate" or (mode == "auto" and not is_loopback_host(_hostname(host)))
            self.collectors.ticks = TickCollector(estimate_offset=estimate)
            self._engine = WebSocketEngine(self.collectors.ticks, self.flow.from_engine, self.worker_id)
            self._engine.start()
        return self._engine

    @property
    def started_engine(self) -> WebSocketEngine | None:
        """The engine if it is running, without starting one."""
        return self._engine

    # -- what players and the web UI read -------------------------------------------------------

    @property
    def sessions(self) -> SessionCollector:
        return self.collectors.sessions

    @property
    def rate_limit(self) -> RateLimitCollector:
        return self.collectors.rate_limit

    @property
    def reconnect(self) -> ReconnectCollector:
        return self.collectors.reconnect

    @property
    def live(self) -> Live | None:
        return self.flow.live

    @property
    def current_run(self) -> str | None:
        return self.flow.current_run

    @property
    def finished_runs(self) -> list[str]:
        return self.flow.finished_runs

    @property
    def finished_run(self) -> str | None:
        return self.flow.finished_runs[-1] if self.flow.finished_runs else None

    # -- Locust events -------------------------------------------------------------------------

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.role == "worker":
            self._settings = None  # this test's spawn message brought the master's current options
        if self.runs is not None:
            self.runs.before_test()
            # Values typed into the web form arrive in parsed_options after init: read them again.
            self._settings = None
            try:
                self.settings  # noqa: B018
            except (ValueError, TypeError) as exc:
                log.error("loadtest: a --lt-* value from the web form is not valid: %s", exc)
                self._settings = PlayerSettings.load()
        if self.role != "worker" and self.flow.runlog is None:
            self.flow.open_run(web=self.web)
            self.coordinator.start_scraping()
        self.flow.start_shipping()
        if self.role != "worker":
            self.coordinator.start_probes()

    def _on_test_stopping(self, environment: Environment, **_: Any) -> None:
        if self.role == "worker":
            self.flow.ship(final=True)

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        # Probes first: one that starts a session while the engine stops would count our own
        # shutdown as a probe it could not carry out.
        self.coordinator.stop()
        if self._engine is not None:
            self._engine.stop()
            self._engine = None
        self.flow.stop_shipping()
        self.flow.ship(final=True)
        if self.runs is not None:
            # Workers' last records are sent just before they report stopped; give them a moment.
            self.runs.test_stopped()

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        if self._engine is not None:
            self._on_test_stop(environment)
        if self.runs is not None:
            self.runs.quitting()
            return
        self.flow.ship(final=True)
        self.flow.finish_headless()


def _hostname(url: str) -> str:
    return urlsplit(url).hostname or ""
