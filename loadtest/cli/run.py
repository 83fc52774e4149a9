"""``loadtest run``: one scenario, start to verdict.

It starts the embedded reference backend (unless the scenario or ``--target`` names one), runs Locust
as a child process in its own session (so a terminal's Ctrl-C reaches only this process, which
then stops Locust gracefully), prints progress from the run log as it grows, evaluates
``abort_on_fail`` gates while running, and at the end writes ``summary.json``, ``report.html``,
``data/*.csv`` and ``junit.xml``. Exit codes: 0 every gate passed; 1 a gate failed; 2 usage or
scenario error; 3 the run could not be carried out (or was interrupted).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtest.backend.lifeline import die_with_parent
from loadtest.backend.process import BackendProcess, BackendStartError
from loadtest.config.scenario import Scenario
from loadtest.config.settings import ADMIN_TOKEN_ENV, JWT_SECRET_ENV, SETTINGS_ENV
from loadtest.exitcodes import ExitCode
from loadtest.results.gates import GateResult
from loadtest.results.live import Live
from loadtest.results.runfolder import DRIVER_ENV, SCENARIO_ENV, RunFolder, RunFolderError, prepare, run_dirs
from loadtest.results.verdict import EXIT_CODES, finish, judged

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"
#: asyncio reads into 256 KiB buffers; with glibc's defaults every read maps and unmaps memory
#: (measured: 36% system CPU in the generator). These thresholds keep the buffers.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "16777216"}
PROGRESS_EVERY = 2.0
ABORT_CHECK_EVERY = 5.0
STOP_GRACE = 60.0


def default_out_dir(scenario: Scenario) -> Path:
    return Path("reports") / f"{scenario.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _reachable(url: str, timeout: float = 5.0) -> str | None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{parts.hostname}:{port}: {exc.strerror or exc}"


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Interrupt:
    """SIGINT/SIGTERM set a flag; the run loop stops Locust gracefully and still writes the report."""

    def __init__(self) -> None:
        self.hit = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupt:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.hit:
            _say("  (stopping; the report is being written - press Ctrl-C again only if it hangs)")
        self.hit = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run(scenario: Scenario, *, out_dir: Path | None = None, web: tuple[str, int] | None = None) -> int:
    out_dir = Path(out_dir or default_out_dir(scenario))
    try:
        prepare(out_dir)
    except RunFolderError as exc:
        _say(f"loadtest: {exc}")
        return ExitCode.NOT_CARRIED_OUT
    _say(f"loadtest: scenario {scenario.name!r} ({scenario.path})")
    env = {**os.environ, **MALLOC_ENV}
    backend: BackendProcess | None = None
    target = scenario.target
    if target is None:
        jwt_secret = secrets.token_urlsafe(32)
        backend = BackendProcess(defects=scenario.defects, args=scenario.backend_args, jwt_secret=jwt_secret)
        try:
            backend.start()
        except BackendStartError as exc:
            _say(f"loadtest: the embedded reference backend did not start: {exc}")
            return ExitCode.NOT_CARRIED_OUT
        target = backend.url
        env[ADMIN_TOKEN_ENV] = backend.admin_token
        env[JWT_SECRET_ENV] = jwt_secret
        defects = ", ".join(scenario.defects) or "none"
        _say(f"  target: embedded reference backend at {target} (defects: {defects})")
    else:
        problem = _reachable(target)
        if problem:
            _say(f"loadtest: target unreachable: {problem}")
            return ExitCode.NOT_CARRIED_OUT
        _say(f"  target: {target}")
    try:
        return _run_locust(scenario, target, out_dir, env, web)
    finally:
        if backend is not None:
            backend.stop()


def _run_locust(
    scenario: Scenario, target: str, out_dir: Path, env: dict[str, str], web: tuple[str, int] | None
) -> int:
    stages = tuple((s.duration, s.users, s.spawn_rate) for s in scenario.stages)
    duration = sum(s.duration for s in scenario.stages) if scenario.stages else scenario.duration
    settings = scenario.settings.replace(out_dir=str(out_dir), stages=stages)
    settings_path = out_dir / "settings.json"
    settings_path.write_text(settings.to_json(), encoding="utf-8")
    env[SETTINGS_ENV] = str(settings_path)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target,
        "-u", str(scenario.users), "-r", f"{scenario.spawn_rate:g}", "-t", f"{round(duration)}s",
        "--loglevel", "INFO", "--only-summary",
    ]  # fmt: skip
    if web is None:
        cmd.append("--headless")
        env[DRIVER_ENV] = "cli"  # this process judges the run folder; Locust only fills it
    else:
        cmd += ["--web-host", web[0], "--web-port", str(web[1])]
        env[SCENARIO_ENV] = str(out_dir)
    if scenario.workers > 1:
        # Master and its local workers talk over a loopback port free for this run: never Locust's
        # fixed 5557 (another run, or another program, may hold it), never all interfaces.
        port = str(free_loopback_port())
        cmd += ["--processes", str(scenario.workers), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    users = f"{scenario.users} users" if not stages else f"{len(stages)} stages up to {max(s[1] for s in stages)} users"
    _say(f"  load: {users}, {duration:g} s, {scenario.workers} worker process(es); output: {out_dir}")
    if web is not None:
        return _run_web(cmd, scenario, out_dir, env, web)
    live = Live(out_dir, scenario.gates)
    tail = RunFolder(out_dir).tail()
    started = time.monotonic()
    aborted: str | None = None
    with open(out_dir / "locust.log", "w", encoding="utf-8") as log, _Interrupt() as interrupt:
        proc = subprocess.Popen(  # noqa: S603
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent()
        )
        deadline = started + duration + 120
        next_progress = started + PROGRESS_EVERY
        next_abort_check = started + ABORT_CHECK_EVERY
        stopping = False
        while proc.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            if (interrupt.hit or aborted) and not stopping:
                stopping = True
                proc.send_signal(signal.SIGTERM)  # Locust stops its users and writes its data
                deadline = now + STOP_GRACE
            if now > deadline:
                _say("loadtest: Locust did not stop in time; killing it")
                proc.kill()
                break
            if now >= next_progress:
                next_progress = now + PROGRESS_EVERY
                live.add(tail.poll())  # only what was appended since the last look
                live.settle()
                _say(f"  [{now - started:5.0f}s/{duration:g}s] {live.status()}")
            if now >= next_abort_check and not stopping:
                next_abort_check = now + ABORT_CHECK_EVERY
                live.add(tail.poll())
                aborted = live.failing_gate(now - started)
                if aborted:
                    _say(f"loadtest: aborting - {aborted}")
        proc.wait(timeout=30)
    incomplete = interrupt.hit or aborted is not None or proc.returncode not in (0, 1)
    if interrupt.hit:
        _say("loadtest: interrupted - writing what was gathered (the report is marked incomplete)")
    # Locust's own failure counts only when we did not stop it ourselves (a stop is exit 0 or 1).
    locust_code = None if interrupt.hit or aborted is not None else proc.returncode
    try:
        summary, results = finish(
            out_dir,
            scenario,
            incomplete=incomplete,
            aborted=aborted,
            interrupted=interrupt.hit,
            locust_exit_code=locust_code,
        )
    except RunFolderError as exc:
        _say(f"loadtest: {exc}; the run's verdict could not be written")
        return ExitCode.NOT_CARRIED_OUT
    print_summary(summary, results, out_dir)
    if locust_code not in (None, 0, 1):
        _say(f"loadtest: Locust exited with code {proc.returncode}; see {out_dir / 'locust.log'}")
    return exit_code(summary)


def exit_code(summary: dict[str, Any]) -> int:
    """0 passed, 1 a gate failed on a run that carried out its plan, 3 not carried out."""
    return EXIT_CODES.get(str(summary.get("outcome")), ExitCode.PASSED if summary.get("passed") else ExitCode.FAILED)


def _run_web(cmd: list[str], scenario: Scenario, out_dir: Path, env: dict[str, str], web: tuple[str, int]) -> int:
    """Locust with its web UI: the user starts and stops tests on the page, as often as they like.

    The Locust process writes each test's run folder (``OUT``, then ``OUT-2``...) with its report
    when the test stops; this process waits for Ctrl-C, then judges the last test by its gates.
    """
    host = f"[{web[0]}]" if ":" in web[0] else web[0]
    with open(out_dir / "locust.log", "w", encoding="utf-8") as log, _Interrupt() as interrupt:
        proc = subprocess.Popen(  # noqa: S603
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent()
        )
        _say(f"  web UI: http://{host}:{web[1]}/ - start the test there; the Ticks, Reconnects, Rate limits,")
        _say("  Ticket replay and Generator tabs show the collectors live. Each test writes its own run folder")
        _say("  and report when it stops (Download Data tab). Press Ctrl-C here to quit.")
        seen: set[Path] = set()
        deadline: float | None = None
        while proc.poll() is None:
            time.sleep(0.5)
            for folder in run_dirs(out_dir):
                if folder not in seen and (folder / "report.html").exists():
                    seen.add(folder)
                    _say(f"  test finished: report {folder / 'report.html'}")
            if interrupt.hit and deadline is None:
                proc.send_signal(signal.SIGTERM)  # Locust stops a running test and writes its report
                deadline = time.monotonic() + STOP_GRACE
            if deadline is not None and time.monotonic() > deadline:
                _say("loadtest: Locust did not stop in time; killing it")
                proc.kill()
                break
        proc.wait(timeout=30)
    folders = run_dirs(out_dir)
    if not folders:
        _say(f"loadtest: no test was started from the web UI; nothing to judge (see {out_dir / 'locust.log'})")
        return ExitCode.NOT_CARRIED_OUT
    last = folders[-1]
    summary = RunFolder(last).summary() or {}
    if "passed" in summary:
        # The master judged the test when it stopped: print its verdicts, not a second judging.
        results = judged(summary, scenario.gates)
    else:  # Locust died before it could judge the test: judge what it left
        summary, results = finish(last, scenario, incomplete=True)
    print_summary(summary, results, last)
    if len(folders) > 1:
        _say(f"({len(folders)} tests were run; this verdict is the last one's: {', '.join(map(str, folders))})")
    return exit_code(summary)


def print_summary(summary: dict[str, Any], results: list[GateResult], out_dir: Path) -> None:
    tick, ws, rc, rp = summary["tick"], summary["ws"], summary["reconnect"], summary["replay"]
    _say("")
    _say("=" * 78)
    verdict = str(summary.get("outcome") or ("passed" if summary["passed"] else "failed")).upper()
    if summary.get("incomplete") and verdict != "NOT CARRIED OUT":
        verdict += " (incomplete run)"
    _say(f"{summary['scenario']['name']}: {verdict}")
    integrity = summary.get("integrity") or {}
    for reason in integrity.get("reasons", []):
        _say(f"  not carried out: {reason}")
    for note in integrity.get("notes", []):
        _say(f"  note: {note}")
    _say("-" * 78)

    def fmt(value: Any, unit: str = "") -> str:
        return "-" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    _say(
        f"players peak {tick['peak_players']}  sessions {ws['sessions_opened']}  unexpected drops "
        f"{ws['unexpected_disconnects']}  tick p50/p5/min {fmt(tick['p50_hz'])}/{fmt(tick['p5_hz'])}/"
        f"{fmt(tick['min_hz'])} Hz"
    )
    if tick.get("nominal_hz"):  # which rate the tick verdicts were judged against, and who said so
        said = {"scenario": "the scenario", "welcome": "the welcome message", "target_metrics": "the target's /metrics"}
        source = said.get(tick.get("nominal_source") or "", "the run")
        _say(f"nominal tick rate {fmt(tick['nominal_hz'])} Hz (from {source}), p5 {fmt(tick.get('p5_ratio'))} of it")
    elif tick.get("ticks_received"):
        _say("nominal tick rate unknown: tick verdicts not checked")
    _say(
        f"429s met {sum(summary['rate_limit']['responses_429'].values())}  replays accepted "
        f"{rp['accepted']}/{rp['attempts']}  recovered {rc['recovered']}/{rc['dropped']}  generator "
        f"{summary['generator']['verdict']}"
    )
    if results:
        _say("-" * 78)
        width = max(len(r.gate.name) for r in results)
        for r in results:
            _say(f"  {'PASS' if r.passed else 'FAIL'}  {r.gate.name:<{width}}  {r.message}")
    if summary["findings"]:
        _say("-" * 78)
        for sentence in summary["findings"]:
            _say(f"  * {sentence}")
    _say("-" * 78)
    report = out_dir / "report.html"
    _say(f"report: {report if report.exists() else '(not built)'}   summary: {out_dir / 'summary.json'}")
    _say("=" * 78)
