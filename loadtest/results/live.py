"""A run's numbers while it runs: the terminal's progress line, abort checks and the web UI.

Records reach a :class:`Live` as they are gathered (on the Locust master, straight from the
workers; in ``loadtest run``, from :meth:`~loadtest.results.runfolder.RunFolder.tail`, which
reads only what was appended). A second stays open for a few seconds, because workers ship the
same second at slightly different times, and is then folded, whole, into the same
:class:`~loadtest.results.reduction.Reduction` and sliding windows the final judging uses. The
live view therefore shows what the report will say, and holds the run's totals, one small row per
second and at most one window of seconds per ``over`` gate: never an hour of histograms, and no
re-reading of the log.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from loadtest.collectors import generator, ratelimit, reconnects, sessions, ticks
from loadtest.collectors.aggregates import Bucket, Record
from loadtest.results.gates import Gate, evaluate, flatten
from loadtest.results.integrity import check
from loadtest.results.reduction import Reduction
from loadtest.results.runfolder import RunFolder
from loadtest.results.summary import summarise
from loadtest.results.verdict import window_metrics
from loadtest.results.windows import Windows

#: Seconds a second waits for the other workers' share before it is folded in.
SETTLE_SECONDS = 3
#: The web UI polls every 2 s; a summary younger than this is served again.
MAX_AGE = 1.0
#: Seconds the live charts keep (one small row each): an hour.
SERIES_SECONDS = 3600


class Live:
    def __init__(self, run_dir: str | os.PathLike[str] | RunFolder, gates: Iterable[Gate] = ()) -> None:
        self.folder = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
        self.gates = tuple(gates)
        self._metrics = window_metrics(self.gates)
        self.reduction: Reduction | None = None
        self.windows: dict[float, Windows] = {}
        self._open: dict[int, dict[str, Bucket]] = {}
        self._closed_before: int | None = None
        self._summary: dict[str, Any] | None = None
        self._summary_at = 0.0
        self._worst: dict[str, tuple[int, Any]] = {}
        #: One row per settled second for the live charts, drawn from the same merged buckets.
        self.series: deque[dict[str, Any]] = deque(maxlen=SERIES_SECONDS)

    def _start(self) -> Reduction:
        # run.json is written as the run starts, after this object may exist: read it at first use.
        settings = self.folder.settings()
        self.reduction = Reduction(settings=settings)
        self.windows = {width: Windows(width, metrics, settings) for width, metrics in self._metrics.items()}
        return self.reduction

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            bucket = record.bucket()
            if self._closed_before is not None and record.second < self._closed_before:
                # Later than the settle time (a worker's last flush): it counts in the totals.
                (self.reduction or self._start()).add_late(record.collector, bucket)
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
        reduction = self.reduction or self._start()
        for second in sorted(s for s in self._open if limit is None or s < limit):
            buckets = self._open.pop(second)
            facts = reduction.add_second(second, buckets)
            for window in self.windows.values():
                window.add_second(second, buckets, facts)
            self.series.append(_series_row(second, buckets))
            self._closed_before = max(self._closed_before or 0, second + 1)

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The summary's data sections as of now (no target counters); cached for :data:`MAX_AGE` s."""
        now = time.time() if now is None else now
        if self._summary is None or now - self._summary_at >= MAX_AGE:
            self.settle(now)
            assert self.reduction is not None
            self._summary = summarise(self.reduction, self.folder, target=False)
            self._summary_at = now
        return self._summary

    def integrity(self, scenario: Any | None, now: float | None = None) -> dict[str, Any]:
        """Plan against what happened so far: the ``integrity`` section the report will carry,
        judged on the seconds settled until now (a storm still to come is not carried out *yet*)."""
        summary = self.summary(now)
        assert self.reduction is not None
        return check(self.reduction, summary, self.folder.settings(), scenario, ended=False)

    def failing_gate(self, elapsed: float, now: float | None = None) -> str | None:
        """The first ``abort_on_fail`` gate that fails on what has settled so far, in words."""
        gates = [g for g in self.gates if g.abort_on_fail and elapsed >= g.delay]
        if not gates:
            return None
        metrics = flatten(self.summary(now))
        for gate in gates:
            windows = [self._worst_window(gate)] if gate.over else ()
            result = evaluate(gate, metrics, windows)
            if not result.passed and result.value is not None:
                return f"gate {gate.name!r} failed during the run ({result.message})"
        return None

    def _worst_window(self, gate: Gate) -> dict[str, Any]:
        """The gate's worst window so far, carried from check to check (each window is read once)."""
        values = self.windows[float(gate.over)].values
        seen, worst = self._worst.get(gate.name, (0, None))
        for window in values[seen:]:
            value = window.get(gate.metric)
            if value is not None:
                worst = value if worst is None else gate.worse(worst, value)
        self._worst[gate.name] = (len(values), worst)
        return {gate.metric: worst}

    def status(self) -> str:
        """The one-line progress of ``loadtest run``, from the newest settled second."""
        reduction = self.reduction or self._start()
        rows = getattr(reduction.reducer(ticks.NAME), "seconds", [])
        latest = rows[-1] if rows else None
        players = latest.players if latest else 0
        st = reduction.total(sessions.NAME).counts
        limited = ratelimit.LIMITED.total(reduction.total(ratelimit.NAME).counts)
        errors = (
            int(st.get(sessions.UNEXPECTED(), 0))
            + sessions.CONNECT_FAILED.total(st)
            + sessions.PROTOCOL_ERROR.total(st)
        )
        saturated = len(getattr(reduction.reducer(generator.NAME), "saturated", ()))
        tick = f"{latest.p5_hz:.1f} Hz" if latest and latest.p5_hz is not None else "-"
        return (
            f"players {players:>5}  sessions {int(st.get(sessions.OPENED(), 0)):>6}  tick p5 {tick:>8}  "
            f"429s {limited:>5}  errors {errors:>5}" + (f"  generator saturated {saturated}s" if saturated else "")
        )


def _series_row(second: int, buckets: dict[str, Bucket]) -> dict[str, Any]:
    """A settled second for the live charts: tick rate, players, 429s met, reconnects."""
    tick = buckets.get(ticks.NAME)
    row = ticks.row(second, tick) if tick is not None else None
    rl = buckets.get(ratelimit.NAME)
    rc = buckets.get(reconnects.NAME)
    return {
        "second": second,
        "p50": None if row is None else row.p50_hz,
        "p5": None if row is None else row.p5_hz,
        "min": None if row is None else row.min_hz,
        "players": 0 if row is None else row.players,
        "limited": 0 if rl is None else int(ratelimit.LIMITED.total(rl.counts)),
        "attempts": 0 if rc is None else int(rc.counts.get(reconnects.ATTEMPTS(), 0)),
        "dropped": 0 if rc is None else int(rc.counts.get(reconnects.DROPPED(), 0)),
    }


__all__ = ["MAX_AGE", "SERIES_SECONDS", "SETTLE_SECONDS", "Live"]
