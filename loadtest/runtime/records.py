"""Where a process's records go: from its collectors to the run folder. The one place the runtime
writes the run folder and calls the results pipeline (run log, target scrapes, live summary,
finishing a run folder).

In a single process (``LocalRunner``) closed seconds go straight to the run log. In distributed
mode workers send them to the master as a custom message every second, and flush what is left
when the test stops (the last partial batch is otherwise lost on quit); the master writes them.
With a web UI the master (or the single process) also feeds each record to the live summary, and
finishes each test's run folder as a headless run does; :mod:`loadtest.runtime.webruns` decides
when.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from locust.env import Environment

from loadtest.collectors.aggregates import Record
from loadtest.collectors.scraper import scrape
from loadtest.config.settings import PlayerSettings
from loadtest.exitcodes import ExitCode
from loadtest.results.live import Live
from loadtest.results.runfolder import DRIVER_ENV, SCENARIO_ENV, RunFolder, RunFolderError, RunLog, next_run_dir
from loadtest.runtime.collectorset import CollectorSet

if TYPE_CHECKING:
    from loadtest.config.scenario import Scenario
    from loadtest.runtime.engine import WebSocketEngine

log = logging.getLogger(__name__)

#: The custom message a worker ships its records to the master with.
MESSAGE = "loadtest:records"


class RecordFlow:
    def __init__(
        self,
        environment: Environment,
        role: str,
        worker_id: str,
        collectors: CollectorSet,
        settings: Callable[[], PlayerSettings],
        engine: Callable[[], WebSocketEngine | None],
    ) -> None:
        self.environment = environment
        self.role = role
        self.worker_id = worker_id
        self.collectors = collectors
        self._settings = settings  # read when used: they change between tests with a web UI
        self._engine = engine  # the engine if it was started, else None
        self._pending: list[Record] = []
        self._shipper: gevent.Greenlet | None = None
        #: Where this process writes records (the master or the single process; never a worker).
        self.runlog: RunLog | None = None
        #: The web UI's live summary of the current test.
        self.live: Live | None = None
        #: The run folder of the test in progress, until its report is written.
        self.current_run: str | None = None
        #: Run folders whose reports are written, oldest first (one per test with a web UI).
        self.finished_runs: list[str] = []
        #: True while :meth:`finish_run` writes a report: a quit then waits instead of killing it.
        self.finishing = False
        if role == "master":
            environment.runner.register_message(MESSAGE, self.on_worker_records)

    # -- records --------------------------------------------------------------------------------

    def from_engine(self, records: list[Record]) -> None:
        self._pending.extend(records)

    def collect(self, final: bool) -> list[Record]:
        before = None if final else int(time.time())
        records = self._pending
        self._pending = []
        for collector in self.collectors.gevent_side:
            records.extend(collector.agg.drain(self.worker_id, before=before))
        return records

    def ship(self, final: bool = False) -> None:
        records = self.collect(final)
        if not records:
            return
        if self.role == "worker":
            self.environment.runner.send_message(MESSAGE, [r.to_wire() for r in records])
        else:
            self.write(records)

    def on_worker_records(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.write([Record.from_wire(item) for item in msg.data])

    def write(self, records: list[Record]) -> None:
        if self.runlog is None:
            return
        try:
            self.runlog.write(records)
        except RunFolderError as exc:
            # A run that cannot keep its data must not go on blind: stop it, say why.
            log.error("loadtest: %s; stopping the test", exc)
            self.runlog = None
            # Never a verdict on data we could not keep: Locust exits "not carried out".
            self.environment.process_exit_code = int(ExitCode.NOT_CARRIED_OUT)
            gevent.spawn(self.environment.runner.quit)
            return
        if self.live is not None:
            self.live.add(records)

    # -- shipping every second ------------------------------------------------------------------

    def start_shipping(self) -> None:
        if self._shipper is None or self._shipper.dead:
            self._shipper = gevent.spawn(self._ship_loop)

    def stop_shipping(self) -> None:
        if self._shipper is not None:
            self._shipper.kill(block=False)

    def _ship_loop(self) -> None:
        while True:
            now = time.time()
            gevent.sleep(int(now) + 1 - now + 0.05)
            engine = self._engine()
            if self.role != "master":  # the master coordinates; its health is not the generator's
                lag = engine.loop_lag_ms if engine is not None else 0.0
                sessions = engine.open_sessions if engine is not None else 0
                # The load this process was asked for and reached: what integrity compares with the plan.
                runner = self.environment.runner
                self.collectors.generator.sample(
                    int(time.time()) - 1,
                    lag,
                    sessions,
                    users=runner.user_count if runner is not None else None,
                    users_planned=runner.target_user_count if runner is not None else None,
                    connected=engine.connected_players if engine is not None else 0,
                )
            self.ship()

    # -- the run folder -------------------------------------------------------------------------

    def open_run(self, web: bool) -> None:
        """Start the run folder of a test: with a web UI each test gets a folder of its own."""
        settings = self._settings()
        out = next_run_dir(_out_dir(settings)) if web else _out_dir(settings)
        self.runlog = RunLog(out)
        self.current_run = str(out)
        if web:
            self.live = Live(out)
            _copy_scenario(out)
        self.runlog.write_run_info(self.environment.host or "", settings)
        log.info("loadtest: writing run data to %s", self.runlog.out_dir)

    def scrape(self, phase: str) -> None:
        """Record the target's ``/metrics`` now (``phase``: start, during, end)."""
        if self.runlog is not None:
            self._scrape_into(self.runlog, phase)

    def _scrape_into(self, runlog: RunLog, phase: str) -> None:
        settings = self._settings()
        if not settings.scrape_metrics or not self.environment.host:
            return
        url = self.environment.host.rstrip("/") + settings.protocol.metrics_path
        verify: object = False if settings.insecure else (settings.ca_bundle or True)
        try:
            runlog.write_target(phase, scrape(url, verify=verify))
        except Exception as exc:  # the scrape is optional ground truth; never fatal
            runlog.write_target(phase, {}, error=f"{exc.__class__.__name__}: {exc}"[:300])

    def finish_run(self, incomplete: bool) -> None:
        """Write the run folder as a headless run does: summary, gates, findings, report, JUnit."""
        runlog, self.runlog = self.runlog, None
        if runlog is None:
            return
        self.finishing = True
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
            self.finishing = False

    def finish_headless(self) -> None:
        """Without a web UI, when Locust quits: the last scrape, then (for a plain ``locust -f``
        run) the same summary, report and JUnit ``loadtest run`` writes, without gates. Under
        ``loadtest run`` the parent judges the folder with the scenario's gates instead."""
        if self.runlog is None:
            return
        # Last, so the target's counters include everything every worker did.
        self._scrape_into(self.runlog, "end")
        self.runlog.close()
        if os.environ.get(DRIVER_ENV) == "cli":
            return
        try:
            from loadtest.results.verdict import finish

            finish(self.runlog.out_dir, None, incomplete=False)
            log.info("loadtest: report written to %s", self.runlog.out_dir / "report.html")
        except Exception:
            log.exception("loadtest: could not write the report of %s", self.runlog.out_dir)


def _out_dir(settings: PlayerSettings) -> str:
    out = settings.out_dir
    if not out:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = os.path.join("reports", f"locust-{stamp}")
    return out


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
