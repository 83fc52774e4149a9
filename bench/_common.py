"""Shared plumbing of the benchmark scripts: child processes (stopped by pid, always), the tick
source, Locust runs, the steady-state window, tables and JSON.

Benchmarks are scripts, not tests: they print figures and write JSON, and they compare designs
measured side by side in one run on one machine, because absolute figures move with the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOCUSTFILES = BENCH / "locustfiles"
RESULTS = BENCH / "results"
#: The glibc settings `loadtest run` gives its Locust processes (docs/harness.md §3); every design
#: gets them, so the comparison is about the client code, not the allocator.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "16777216"}


def say(text: str) -> None:
    print(text, flush=True)


def raise_fd_limit() -> int:
    """Soft fd limit up to the hard one (children inherit it); 10,000 sessions need 10,000 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cores() -> tuple[str | None, str | None]:
    """(source core, generator core) for taskset, or (None, None) on a one-core machine."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(allowed[0]), str(allowed[1])


def pinned(command: Sequence[str], core: str | None) -> list[str]:
    return (["taskset", "-c", core] if core is not None else []) + list(command)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import gevent
    import locust
    import websocket
    import websockets

    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "locust": locust.__version__,
        "gevent": gevent.__version__,
        "websockets": websockets.__version__,
        "websocket-client": websocket.__version__,
    }


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL, by pid; True when it ended on SIGTERM within ``timeout``."""
    if proc.poll() is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return False


@dataclass
class TickSource:
    """bench/tick_source.py in its own process, pinned to its own core."""

    rate: float
    core: str | None
    max_seconds: float = 3600.0
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    status_path: str = ""

    def start(self) -> TickSource:
        self.status_path = tempfile.mktemp(prefix="bench-source-", suffix=".json")  # noqa: S306 - our own tmp
        command = [sys.executable, str(BENCH / "tick_source.py"), "--rate", str(self.rate)]
        command += ["--status", self.status_path, "--max-seconds", str(self.max_seconds)]
        self.proc = subprocess.Popen(pinned(command, self.core), stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the source prints READY or dies
        if not line.startswith("READY "):
            stop_process(self.proc)
            raise RuntimeError(f"tick source did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def status(self) -> dict[str, Any]:
        try:
            with open(self.status_path, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def wait_connections(self, at_most: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            n = int(self.status().get("connections", -1))
            if 0 <= n <= at_most or time.monotonic() > deadline:
                return n
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        with contextlib.suppress(OSError):
            os.unlink(self.status_path)


@contextlib.contextmanager
def tick_source(rate: float, core: str | None, max_seconds: float = 3600.0) -> Iterator[TickSource]:
    source = TickSource(rate, core, max_seconds).start()
    try:
        yield source
    finally:
        source.stop()


@dataclass
class LocustRun:
    """One real headless Locust run of a bench locustfile, and what it measured about itself."""

    design: str
    sessions: int
    returncode: int | None
    stopped_cleanly: bool
    exit_after_s: float
    stderr_tail: str
    meter: dict[str, Any] = field(default_factory=dict)
    peak_rss: int = 0

    @property
    def survived(self) -> bool:
        return self.returncode is not None and self.returncode >= 0 and bool(self.meter)


def run_locust(
    locustfile: str,
    design: str,
    *,
    url: str,
    sessions: int,
    spawn_rate: float,
    run_time: float,
    core: str | None,
    extra_env: dict[str, str] | None = None,
) -> LocustRun:
    """``locust -f bench/locustfiles/<file> --headless`` as a child; waits (bounded) for it to quit."""
    out = tempfile.mktemp(prefix=f"bench-{design}-", suffix=".json")  # noqa: S306 - our own tmp
    env = {**os.environ, **MALLOC_ENV, "BENCH_URL": url, "BENCH_OUT": out, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(LOCUSTFILES), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / locustfile), "--headless"]
    command += ["-u", str(sessions), "-r", str(spawn_rate), "-t", f"{int(run_time)}s", "--stop-timeout", "5"]
    command += ["--loglevel", "WARNING", "--only-summary"]
    started = time.monotonic()
    peak = 0
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(
            pinned(command, core), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True
        )
        clean = True
        try:
            ps = psutil.Process(proc.pid)
            deadline = started + run_time + 60
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, ps.memory_info().rss)
                time.sleep(0.5)
            if proc.poll() is None:
                clean = False
        finally:
            if proc.poll() is None:
                stop_process(proc)
                clean = False
        elapsed = time.monotonic() - started - run_time
        err.seek(0)
        tail = err.read()[-2000:]
    meter: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError), open(out, encoding="utf-8") as fh:
        meter = json.load(fh)
    with contextlib.suppress(OSError):
        os.unlink(out)
    return LocustRun(design, sessions, proc.returncode, clean, round(elapsed, 1), tail, meter, peak)


def window_stats(run: LocustRun, *, warmup: float, rate: float, end_margin: float = 1.5) -> dict[str, Any]:
    """Steady-state figures: from ``warmup`` s after the last session connected to the stop."""
    m = run.meter
    samples = m.get("samples") or []
    if len(samples) < 3:
        return {"ok": False}
    t_start, rss0 = samples[0][0], samples[0][2]
    full = next((s for s in samples if s[3] >= run.sessions), None)
    if full is None:
        full = max(samples, key=lambda s: s[3])
    lo = full[0] + warmup
    # The run stops at the last sample before Locust's stop (users' on_stop drops the count).
    steady = [s for s in samples if s[0] >= lo and s[3] >= full[3]]
    if len(steady) < 2:
        return {"ok": False, "connected": full[3]}
    a, b = steady[0], steady[-1]
    if b[0] - a[0] > end_margin + 1 and len(steady) > 2:
        b = steady[-2]  # the last full second may already hold the stop
    sa, sb = round(a[0]), round(b[0])
    messages = missed = 0
    lag = HdrHistogram(1, 600_000_000, 2)
    for s_text, sec in m.get("seconds", {}).items():
        s = int(s_text)
        if sa <= s < sb:
            messages += sec["messages"]
            missed += sec["missed"]
            lag.add(HdrHistogram.decode(sec["lag"]))
    cpu = b[1] - a[1]
    wall = b[0] - a[0]
    connected = full[3]
    expected = connected * (sb - sa) * rate
    return {
        "ok": True,
        "connected": connected,
        "window_s": sb - sa,
        "messages": messages,
        "messages_per_s": round(messages / wall, 1) if wall else None,
        "msgs_per_cpu_s": round(messages / cpu) if cpu > 0 else None,
        "cpu_pct": round(100 * cpu / wall, 1) if wall else None,
        "lag_p50_ms": round(lag.get_value_at_percentile(50) / 1000, 2) if lag.get_total_count() else None,
        "lag_p99_ms": round(lag.get_value_at_percentile(99) / 1000, 2) if lag.get_total_count() else None,
        "missed": missed,
        "missed_pct": round(100 * missed / (messages + missed), 3) if messages + missed else None,
        "delivered_pct": round(100 * messages / expected, 1) if expected else None,
        "rss_mb": round(b[2] / 1e6, 1),
        "rss_per_session_kb": round((b[2] - rss0) / connected / 1024, 1) if connected else None,
        "t_start": t_start,
    }


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A Markdown table, so the same text goes to the terminal and into docs/performance.md."""
    head = "| " + " | ".join(title for _, title in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, rule]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(name: str, passed: bool | None, detail: str) -> dict[str, Any]:
    word = "PASS" if passed else ("FAIL" if passed is not None else "N/A ")
    say(f"{word}  {name}: {detail}")
    return {"target": name, "passed": passed, "detail": detail}


def write_json(data: dict[str, Any], out: str | None, name: str) -> Path:
    path = Path(out) if out else RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    say(f"results written to {path}")
    return path
