"""Run real, short Locust (and ``loadtest``) processes against a target and read what the harness wrote.

Locust is always a child process: importing it here would gevent-patch the test process. Besides
running (``run_locust``, ``RunningLocust``, ``loadtest``), this is where a run is judged honestly:
``assert_clean`` fails on any error the run only logged, ``run_healthy`` and ``saturation`` keep a
saturated generator's numbers from being asserted on, and ``server_tick_rates`` reads the
target's own tick gauge to judge tick verdicts against.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
#: ``loadtest`` as an operator runs it, from the checkout.
LOADTEST = [sys.executable, "-m", "loadtest"]


@dataclass
class LocustResult:
    returncode: int
    stdout: str
    stderr: str
    out_dir: Path

    @property
    def summary(self) -> dict:
        path = self.out_dir / "summary.json"
        assert path.exists(), f"no summary.json; stderr:\n{self.stderr[-3000:]}"
        return json.loads(path.read_text())

    def target_delta(self, key: str) -> float:
        return self.summary["target_metrics"]["delta"].get(key, 0.0)


def locust_command(
    host: str,
    out_dir: Path,
    *,
    users: int,
    spawn_rate: float,
    run_time: str,
    locustfile: Path = LOCUSTFILE,
    extra: tuple[str, ...] = (),
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        run_time,
        "--host",
        host,
        "--lt-out",
        str(out_dir),
        "--only-summary",
        *extra,
        *(_master_port() if "--processes" in extra else ()),
    ]


def _master_port() -> tuple[str, ...]:
    """Local workers reach their master on a port free for this run, so runs side by side never meet."""
    from loadtest.cli.run import free_loopback_port

    port = str(free_loopback_port())
    bind = ("--master-bind-host", "127.0.0.1", "--master-bind-port", port)
    return (*bind, "--master-host", "127.0.0.1", "--master-port", port)


def run_locust(
    host: str, out_dir: Path, *, timeout: float = 180, env: dict[str, str] | None = None, **kwargs: Any
) -> LocustResult:
    """Run Locust to completion; ``kwargs`` are :func:`locust_command`'s."""
    cmd = locust_command(host, out_dir, **kwargs)
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    return LocustResult(proc.returncode, proc.stdout, proc.stderr, out_dir)


#: What a run logs when something went wrong that no counter shows. Locust's log lines read
#: ``[time] host/LEVEL/logger: message``: any ERROR or CRITICAL (the harness's "could not write the
#: summary", the engine's "session N failed", asyncio's "Task exception was never retrieved",
#: Locust's "Unhandled exception in greenlet"), and any WARNING from our own loggers (the engine's
#: "unexpected WebSocket connect failure", a probe that "could not run"); then what Python prints
#: without logging (tracebacks, exceptions ignored in ``__del__`` or at exit).
PROBLEM = re.compile(
    r"/(?:ERROR|CRITICAL)/"
    r"|/WARNING/loadtest[.:]"
    r"|^Traceback \(most recent call last\)"
    r"|^Exception ignored in"
    r"|Unhandled exception",
    re.MULTILINE,
)


def log_problems(text: str, allow: Iterable[str] = ()) -> list[str]:
    """The lines of a run's log that report an error, less those matching an ``allow`` pattern."""
    allowed = [re.compile(a) for a in allow]
    return [line for line in text.splitlines() if PROBLEM.search(line) and not any(a.search(line) for a in allowed)]


def assert_clean(result: LocustResult | Path, allow: Iterable[str] = ()) -> None:
    """Nothing went wrong that was only logged: every bad reply must have become a counted error.

    Reads the run's stderr and, for ``loadtest run``, its ``locust.log``. ``allow`` names the lines
    a test provoked on purpose (regular expressions).
    """
    texts = []
    if isinstance(result, LocustResult):
        texts.append(result.stderr)
        out_dir = result.out_dir
    else:
        out_dir = result
    log = out_dir / "locust.log"
    if log.exists():
        texts.append(log.read_text(encoding="utf-8", errors="replace"))
    problems = [line for text in texts for line in log_problems(text, allow)]
    tail = texts[0][-3000:] if texts else ""
    assert not problems, "the run logged errors:\n" + "\n".join(problems[:20]) + "\n---\n" + tail


def saturation(summary: dict[str, Any]) -> str | None:
    """Why the generator's own numbers cannot be trusted in this run, or None when it was healthy."""
    gen = summary.get("generator") or {}
    if gen.get("verdict", "healthy") == "healthy" and not gen.get("seconds_saturated"):
        return None
    return (
        f"the load generator was saturated for {gen.get('seconds_saturated')} s "
        f"(cpu max {gen.get('cpu_max_pct')} %, loop lag p99 {gen.get('loop_lag_p99_ms')} ms)"
    )


def run_healthy(host: str, out_dir: Path, **kwargs: Any) -> LocustResult:
    """:func:`run_locust`, retried once if the generator saturated; skipped with the reason if again.

    A saturated generator measures itself, not the target: its numbers are never asserted on as
    if it had been healthy.
    """
    result = run_locust(host, out_dir, **kwargs)
    first = saturation(result.summary)
    if first is None:
        return result
    result = run_locust(host, out_dir.with_name(out_dir.name + "-retry"), **kwargs)
    second = saturation(result.summary)
    if second is not None:
        pytest.skip(f"this machine is too busy to judge the run: {first}; on retry {second}")
    return result


def skip_if_the_box_decided(out_dir: Path, summary: dict[str, Any]) -> None:
    """Skip, with the numbers, a run whose tick verdict this machine's load decided rather than the target.

    That is a saturated generator, or failed tick gates that the backend's own gauge confirms: it
    ticked below the threshold itself, and a correct backend only does that on a starved machine.
    """
    if why := saturation(summary):
        pytest.skip(f"this machine is too busy to judge tick rates: {why}")
    failed = [g["metric"] for g in summary.get("gates", []) if not g["passed"]]
    threshold = (summary.get("tick") or {}).get("threshold_hz")
    server_low = min(server_tick_rates(out_dir), default=None)
    box = server_low is not None and threshold is not None and server_low < threshold
    if failed and all(m.startswith("tick.") for m in failed) and box:
        pytest.skip(f"the backend's own gauge fell to {server_low:.1f} Hz on this busy machine ({failed} failed)")


def server_tick_rates(out_dir: Path, stat: str = "min") -> list[float]:
    """The target's own tick-rate gauge (``gamebackend_game_server_tick_rate_hz``), per scrape during the run."""
    path = out_dir / "data" / "target_metrics.jsonl"
    rates = []
    for line in path.open(encoding="utf-8") if path.exists() else ():
        scrape = json.loads(line)
        if scrape.get("phase") != "during":
            continue
        rates += [
            v
            for k, v in (scrape.get("samples") or {}).items()
            if k.startswith("gamebackend_game_server_tick_rate_hz") and f'stat="{stat}"' in k
        ]
    return rates


def loadtest(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``loadtest ARGS`` to completion from the checkout, capturing what it prints."""
    return subprocess.run([*LOADTEST, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)


def summary_of(out: Path) -> dict:
    """The ``summary.json`` a run wrote into its folder."""
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


class RunningLocust:
    """A Locust run in the background, for tests that act on the target while it runs."""

    def __init__(self, host: str, out_dir: Path, env: dict[str, str] | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.out_dir = out_dir
        self.proc = subprocess.Popen(
            locust_command(host, out_dir, **kwargs),
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def stop(self, timeout: float = 60) -> LocustResult:
        """SIGTERM (Locust stops gracefully and the harness writes its summary), then wait, by pid."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate(timeout=10)
        return LocustResult(self.proc.returncode, stdout, stderr, self.out_dir)

    def wait(self, timeout: float = 120) -> LocustResult:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        return LocustResult(self.proc.returncode, stdout, stderr, self.out_dir)
