"""The run's summary while it runs, on the process that writes the run log (master or local).

Records from every worker pass through here on their way to the log. A second stays open for a
few seconds, because workers ship the same second at slightly different times, and is then
folded into a :class:`~loadtest.results.summary.Reduction`, the same structure the final summary is
built from. The live view therefore shows what the report will say, and holds the run's totals
and one small row per second, never an hour of histograms.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from loadtest.collectors.aggregates import Bucket, Record
from loadtest.results.summary import Reduction, summarise_reduction

#: Seconds a second waits for the other workers' share before it is folded in.
SETTLE_SECONDS = 3
#: The web UI polls every 2 s; a summary younger than this is served again.
MAX_AGE = 1.0


class LiveSummary:
    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = run_dir
        self.reduction = Reduction()
        self._open: dict[int, dict[str, Bucket]] = {}
        self._closed_before: int | None = None
        self._summary: dict[str, Any] | None = None
        self._summary_at = 0.0

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            bucket = record.bucket()
            if self._closed_before is not None and record.second < self._closed_before:
                # Later than the settle time (a worker's last flush): it counts in the totals.
                self.reduction.add_late(record.collector, bucket)
                continue
            per = self._open.setdefault(record.second, {})
            mine = per.get(record.collector)
            if mine is None:
                per[record.collector] = bucket
            else:
                mine.merge(bucket)

    def settle(self, now: float | None = None, *, everything: bool = False) -> None:
        """Fold every open second older than the settle time (all of them at the end of a run)."""
        limit = None if everything else int(time.time() if now is None else now) - SETTLE_SECONDS
        for second in sorted(s for s in self._open if limit is None or s < limit):
            for collector, bucket in self._open.pop(second).items():
                self.reduction.add(collector, second, bucket)
            self._closed_before = max(self._closed_before or 0, second + 1)

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The summary's data sections as of now; cached for :data:`MAX_AGE` seconds."""
        now = time.time() if now is None else now
        if self._summary is None or now - self._summary_at >= MAX_AGE:
            self.settle(now)
            self._summary = summarise_reduction(self.reduction, self.run_dir)
            self._summary_at = now
        return self._summary
