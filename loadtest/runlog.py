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

from loadtest.aggregates import Record

AGGREGATES = "aggregates.jsonl"
TARGET_METRICS = "target_metrics.jsonl"
RUN_INFO = "run.json"


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
