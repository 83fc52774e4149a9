"""One harness per Locust process: settings, collectors, the WebSocket engine, and data shipping.

In a single process (``LocalRunner``) closed seconds go straight to the run log. In distributed
mode workers send them to the master as a custom message every second, and flush what is left
when the test stops (the last partial batch is otherwise lost on quit); the master writes them.
The master also scrapes the target's ``/metrics``. Everything is wired through Locust's events
and ``register_message``; nothing of Locust is patched.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest.adapters.protocol import Protocol
from loadtest.collectors.aggregates import Record
from loadtest.collectors.cors import CorsCollector
from loadtest.collectors.generator import GeneratorCollector
from loadtest.collectors.http import HttpCollector
from loadtest.collectors.ratelimit import RateLimitCollector, RateLimitProbeCollector
from loadtest.collectors.reconnects import ReconnectCollector
from loadtest.collectors.replay import ReplayCollector
from loadtest.collectors.scraper import scrape
from loadtest.collectors.sessions import SessionCollector
from loadtest.collectors.ticks import TickCollector
from loadtest.config.settings import PlayerSettings
from loadtest.results.live import Live
from loadtest.results.runfolder import (
    DRIVER_ENV,
    EXIT_NOT_CARRIED_OUT,
    SCENARIO_ENV,
    RunFolder,
    RunFolderError,
    RunLog,
    next_run_dir,
)
from loadtest.runtime.engine import WebSocketEngine

if TYPE_CHECKING:
    from loadtest.config.scenario import Scenario

log = logging.getLogger(__name__)

MESSAGE = "loadtest:records"
STORM_MESSAGE = "loadtest:storm"
SHIP_INTERVAL = 1.0
FINISH_DELAY = 2.0
FINISH_TIMEOUT = 120.0

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
        self.sessions = SessionCollector()
        self.rate_limit = RateLimitCollector()
        self.reconnect = ReconnectCollector()
        self.replay = ReplayCollector()
        self.http = HttpCollector()
        self.generator = GeneratorCollector(self.worker_id)
        self.cors = CorsCollector()
        self.rate_limit_probe = RateLimitProbeCollector(self.rate_limit.agg)
        self._gevent_side = [
            self.sessions,
            self.rate_limit,
            self.reconnect,
            self.replay,
            self.http,
            self.generator,
            self.cors,
        ]
        self._pending: list[Record] = []
        self._engine: WebSocketEngine | None = None
        self._ticks: TickCollector | None = None
        self.runlog: RunLog | None = None
        self._loops: list[gevent.Greenlet] = []
        self._shipper: gevent.Greenlet | None = None
        self._user_index = 0
        self.started_at: float | None = None
        # With a web UI, each test started from the page is a run of its own: its own folder,
        # live summary, and report when it stops.
        self.web = self.role != "worker" and getattr(environment, "web_ui", None) is not None
        self.live: Live | None = None
        self.current_run: str | None = None
        self.finished_runs: list[str] = []
        self._finisher: gevent.Greenlet | None = None
        self._finishing = False
        environment.events.request.add_listener(self.http.on_request)
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.test_stopping.add_listener(self._on_test_stopping)
        environment.events.test_stop.add_listener(self._on_test_stop)
        environment.events.quitting.add_listener(self._on_quitting)
        if self.role == "master":
            runner.register_message(MESSAGE, self._on_worker_records)
        if self.role == "worker":
            runner.register_message(STORM_MESSAGE, self._on_storm)

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
        if self._engine is None:
            host = self.environment.host or ""
            mode = self.settings.clock_offset
            estimate = mode == "estimate" or (mode == "auto" and not is_loopback_host(_hostname(host)))
            self._ticks = TickCollector(estimate_offset=estimate)
            self._engine = WebSocketEngine(self._ticks, self._from_engine, self.worker_id)
            self._engine.start()
        return self._engine

    # -- data flow ----------------------------------------------------------------------------

    def _from_engine(self, records: list[Record]) -> None:
        self._pending.extend(records)

    def _collect(self, final: bool) -> list[Record]:
        before = None if final else int(time.time())
        records = self._pending
        self._pending = []
        for collector in self._gevent_side:
            records.extend(collector.agg.drain(self.worker_id, before=before))
        return records

    def _ship(self, final: bool = False) -> None:
        records = self._collect(final)
        if not records:
            return
        if self.role == "worker":
            self.environment.runner.send_message(MESSAGE, [r.to_wire() for r in records])
        else:
            self._write(records)

    def _on_worker_records(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._write([Record.from_wire(item) for item in msg.data])

    def _write(self, records: list[Record]) -> None:
        if self.runlog is None:
            return
        try:
            self.runlog.write(records)
        except RunFolderError as exc:
            # A run that cannot keep its data must not go on blind: stop it, say why.
            log.error("loadtest: %s; stopping the test", exc)
            self.runlog = None
            # Never a verdict on data we could not keep: Locust exits "not carried out".
            self.environment.process_exit_code = EXIT_NOT_CARRIED_OUT
            gevent.spawn(self.environment.runner.quit)
            return
        if self.live is not None:
            self.live.add(records)

    # -- lifecycle -------------------------------------------------------------------------------

    def _out_dir(self) -> str:
        out = self.settings.out_dir
        if not out:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = os.path.join("reports", f"locust-{stamp}")
        return out

    @property
    def finished_run(self) -> str | None:
        return self.finished_runs[-1] if self.finished_runs else None

    def _on_test_start(self, environment: Environment, **_: Any) -> None:
        self.started_at = time.time()
        if self.role == "worker":
            self._settings = None  # this test's spawn message brought the master's current options
        if self.web:
            self._join_finisher()
            # Values typed into the web form arrive in parsed_options after init: read them again.
            self._settings = None
            try:
                self.settings  # noqa: B018
            except (ValueError, TypeError) as exc:
                log.error("loadtest: a --lt-* value from the web form is not valid: %s", exc)
                self._settings = PlayerSettings.load()
        if self.role != "worker" and self.runlog is None:
            out = next_run_dir(self._out_dir()) if self.web else self._out_dir()
            self.runlog = RunLog(out)
            self.current_run = str(out)
            if self.web:
                self.live = Live(out)
                _copy_scenario(out)
            self.runlog.write_run_info(self.environment.host or "", self.settings)
            log.info("loadtest: writing run data to %s", self.runlog.out_dir)
            self._scrape("start")
            if self.settings.scrape_metrics:
                self._loops.append(gevent.spawn(self._scrape_loop))
        if self._shipper is None or self._shipper.dead:
            self._shipper = gevent.spawn(self._ship_loop)
            self._loops.append(self._shipper)
        if self.role != "worker":
            self._start_probes()

    # -- probes and storms (coordinator only) ----------------------------------------------------

    def _start_probes(self) -> None:
        from loadtest.adapters import get as adapter_for
        from loadtest.probes.cors import CorsProbe

        adapter = adapter_for(self.settings.protocol_kind)
        ReplayProbe, RateLimitProbe = adapter.probe_class("replay"), adapter.probe_class("rate_limit")
        host, settings, probes = self.environment.host or "", self.settings, self.settings.probes
        if not host:
            return
        if probes.replay_rate > 0:
            replay = ReplayProbe(host, settings, self.protocol, self.engine, self.replay)
            self._loops.append(gevent.spawn(replay.run, probes.replay_rate))
        if probes.rate_limit_endpoint:
            self._loops.append(gevent.spawn(RateLimitProbe(host, settings, self.protocol, self.rate_limit_probe).run))
        if probes.cors_origins:
            self._loops.append(gevent.spawn(CorsProbe(host, settings, self.protocol, self.cors).run))
        for storm in settings.storms:
            self._loops.append(gevent.spawn_later(storm.at, self._fire_storm, storm))

    def _fire_storm(self, storm: Any) -> None:
        from loadtest.probes.storms import StormError, fire

        try:
            fire(storm, self.environment.host or "", self.settings, self.reconnect, self._drop_clients)
        except StormError as exc:
            log.error("loadtest: storm at %gs (%s) not carried out: %s", storm.at, storm.side, exc)
            self.reconnect.storm_failed()

    def _drop_clients(self, fraction: float) -> int | None:
        if self.role == "master":
            self.environment.runner.send_message(STORM_MESSAGE, {"fraction": fraction})
            return None  # each worker drops its own share; the recoveries are what count
        return self.engine.drop(fraction)

    def _on_storm(self, environment: Environment, msg: Any, **_: Any) -> None:
        if self._engine is not None:
            self._engine.drop(float(msg.data["fraction"]))

    def _ship_loop(self) -> None:
        while True:
            now = time.time()
            gevent.sleep(int(now) + 1 - now + 0.05)
            engine = self._engine
            if self.role != "master":  # the master coordinates; its health is not the generator's
                lag = engine.loop_lag_ms if engine is not None else 0.0
                sessions = engine.open_sessions if engine is not None else 0
                self.generator.sample(int(time.time()) - 1, lag, sessions)
            self._ship()

    def _scrape_loop(self) -> None:
        while True:
            gevent.sleep(self.settings.scrape_interval)
            self._scrape("during")

    def _scrape(self, phase: str) -> None:
        if self.runlog is not None:
            self._scrape_into(self.runlog, phase)

    def _scrape_into(self, runlog: RunLog, phase: str) -> None:
        if not self.settings.scrape_metrics or not self.environment.host:
            return
        url = self.environment.host.rstrip("/") + self.settings.protocol.metrics_path
        verify: object = False if self.settings.insecure else (self.settings.ca_bundle or True)
        try:
            runlog.write_target(phase, scrape(url, verify=verify))
        except Exception as exc:  # the scrape is optional ground truth; never fatal
            runlog.write_target(phase, {}, error=f"{exc.__class__.__name__}: {exc}"[:300])

    def _on_test_stopping(self, environment: Environment, **_: Any) -> None:
        if self.role == "worker":
            self._ship(final=True)

    def _on_test_stop(self, environment: Environment, **_: Any) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None
        for g in self._loops:
            g.kill(block=False)
        self._loops = []
        self._ship(final=True)
        if self.web and self.runlog is not None and self._finisher is None:
            # Workers' last records are sent just before they report stopped; give them a moment.
            self._finisher = gevent.spawn_later(FINISH_DELAY, self._finish_run, False)

    def _join_finisher(self) -> None:
        if self._finisher is not None:
            self._finisher.join(timeout=FINISH_TIMEOUT)
            self._finisher = None

    def _finish_run(self, incomplete: bool) -> None:
        """Write the run folder as a headless run does: summary, gates, findings, report, JUnit."""
        runlog, self.runlog = self.runlog, None
        if runlog is None:
            return
        self._finishing = True
        self._scrape_into(runlog, "end")
        runlog.close()
        try:
            from loadtest.results.verdict import finish

            finish(runlog.out_dir, _scenario_for_web(), incomplete=incomplete)
            log.info("loadtest: report of this test written to %s", runlog.out_dir / "report.html")
        except Exception:
            log.exception("loadtest: could not write the report of %s", runlog.out_dir)
        finally:
            self.finished_runs.append(str(runlog.out_dir))
            self.live = None
            self.current_run = None
            self._finishing = False

    def _on_quitting(self, environment: Environment, **_: Any) -> None:
        if self._engine is not None:
            self._on_test_stop(environment)
        if self.web:
            if self._finisher is not None and not self._finishing:
                self._finisher.kill(block=True)  # not begun: finish now rather than after the delay
                self._finisher = None
            self._join_finisher()  # begun: let it end (killing it mid-way would lose the report)
            if self.runlog is not None:
                self._ship(final=True)
                # A quit ends the test the way the Stop button does (Locust stops it first).
                self._finish_run(False)
            return
        self._ship(final=True)
        if self.runlog is not None:
            # Last, so the target's counters include everything every worker did.
            self._scrape("end")
            self.runlog.close()
            if os.environ.get(DRIVER_ENV) == "cli":
                return  # `loadtest run` judges the folder itself, with the scenario's gates
            try:
                from loadtest.results.verdict import finish

                # A plain `locust -f` run: the same summary, report and JUnit, without gates.
                finish(self.runlog.out_dir, None, incomplete=False)
                log.info("loadtest: report written to %s", self.runlog.out_dir / "report.html")
            except Exception:
                log.exception("loadtest: could not write the report of %s", self.runlog.out_dir)


def _scenario_dir() -> Path | None:
    folder = os.environ.get(SCENARIO_ENV)
    return Path(folder) if folder else None


def _copy_scenario(out: Path) -> None:
    """Each web-UI run folder keeps the scenario it is judged by, so ``loadtest report`` works on it."""
    source = _scenario_dir()
    if source is not None:
        RunFolder(out).copy_scenario_from(RunFolder(source))


def _scenario_for_web() -> Scenario | None:
    """The scenario of ``loadtest run --web`` (gates and all); None for a plain ``locust -f``."""
    folder = _scenario_dir()
    if folder is None:
        return None
    try:
        return RunFolder(folder).scenario()
    except (OSError, ValueError) as exc:
        log.error("loadtest: cannot read the scenario in %s (%s); judging without gates", folder, exc)
        return None


def _hostname(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
