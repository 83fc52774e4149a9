"""The run folder's data, written as it is gathered.

``data/aggregates.jsonl`` receives every closed second of every collector from every worker the
moment it reaches the master (or the single local process), one line each, flushed at once: a run
that is killed keeps everything up to its last second. ``data/target_metrics.jsonl`` holds the
target's own ``/metrics`` counters at the start, every few seconds, and at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loadtest.collectors.aggregates import Record

AGGREGATES = "aggregates.jsonl"
TARGET_METRICS = "target_metrics.jsonl"
RUN_INFO = "run.json"
MAX_RUNS = 10_000
#: The scenario as run, kept in every run folder: ``loadtest report`` and the web UI judge by it.
SCENARIO_COPY, OVERRIDES = "scenario.toml", "overrides.json"
#: Set by ``loadtest run`` for Locust: the folder holding the scenario its web-UI runs are judged by.
SCENARIO_ENV = "LOADTEST_SCENARIO_DIR"


def run_dirs(base: str | os.PathLike[str]) -> list[Path]:
    """The run folders of one ``loadtest run`` or Locust process: ``base`` for its first test, then
    ``base-2``, ``base-3``... for each further test started from the web UI."""
    base = Path(base)
    found = [base] if (base / "data" / AGGREGATES).exists() else []
    for n in range(2, MAX_RUNS):
        candidate = base.with_name(f"{base.name}-{n}")
        if not candidate.exists():
            break
        if (candidate / "data" / AGGREGATES).exists():
            found.append(candidate)
    return found


def next_run_dir(base: str | os.PathLike[str]) -> Path:
    """The first of ``base``, ``base-2``, ``base-3``... that holds no run data yet."""
    base = Path(base)
    if not (base / "data" / AGGREGATES).exists():
        return base
    for n in range(2, MAX_RUNS):
        candidate = base.with_name(f"{base.name}-{n}")
        if not (candidate / "data" / AGGREGATES).exists():
            return candidate
    raise RuntimeError(f"{base}: {MAX_RUNS} runs already; choose another output folder")


class RunLog:
    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.data_dir = self.out_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._aggregates = open(self.data_dir / AGGREGATES, "a", encoding="utf-8")  # noqa: SIM115
        self._target = open(self.data_dir / TARGET_METRICS, "a", encoding="utf-8")  # noqa: SIM115
        self.records_written = 0

    def write(self, records: Iterable[Record]) -> None:
        lines = [r.to_json() + "\n" for r in records]
        if not lines or self._aggregates.closed:
            return
        self._aggregates.writelines(lines)
        self._aggregates.flush()
        self.records_written += len(lines)

    def write_run_info(self, host: str, settings: Any) -> None:
        """What was run against what: the target and the player settings (no secrets live there)."""
        info = {"host": host, "started": time.time(), "settings": json.loads(settings.to_json())}
        (self.out_dir / RUN_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")

    def write_target(self, phase: str, samples: dict[str, float], error: str | None = None) -> None:
        if self._target.closed:
            return
        entry: dict[str, Any] = {"t": time.time(), "phase": phase, "samples": samples}
        if error:
            entry["error"] = error
        self._target.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._target.flush()

    def close(self) -> None:
        self._aggregates.close()
        self._target.close()
