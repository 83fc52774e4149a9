"""Load-generator health: is this worker measuring the server, or itself?

Each second, each worker records its process CPU and the WebSocket engine's event-loop lag. A
second in which either crosses its threshold is flagged saturated; tick analysis ignores such
seconds, so a struggling generator is never reported as a struggling server.
"""

from __future__ import annotations

from typing import Any, Literal

import psutil

from loadtest.collectors.aggregates import Aggregator, Bucket, percentile
from loadtest.collectors.base import Context, Reducer, Row, Section, max_of, ms, register
from loadtest.collectors.keys import Family

NAME = "generator"
CPU_SATURATED = 90.0  # percent of one core: the process is single-threaded for Python work
LOOP_LAG_SATURATED_MS = 50.0

SECONDS, CPU_SUM = Family("seconds"), Family("cpu_pct_sum")
SESSIONS, SATURATED = Family("sessions"), Family("saturated")
CPU, LOOP_LAG = Family("cpu_x100_count"), Family("loop_lag_us")
#: Each process's own figures, so merged seconds still tell the processes apart (the web UI's and
#: the summary's per-worker table): ``worker:<id>:<field>``.
WORKER = Family("worker", ("worker", "field"), greedy="worker")


class GeneratorCollector:
    def __init__(self, worker: str = "local") -> None:
        self.agg = Aggregator(NAME)
        self.worker = worker
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the first reading is meaningless

    def sample(self, second: int, loop_lag_ms: float, sessions: int) -> None:
        cpu = self._process.cpu_percent(None)
        b = self.agg.bucket(second)
        cpu_value, lag_value = max(1.0, cpu * 100), max(1.0, loop_lag_ms * 1000)
        saturated = cpu >= CPU_SATURATED or loop_lag_ms >= LOOP_LAG_SATURATED_MS
        me = (SECONDS, CPU_SUM, SESSIONS, CPU, LOOP_LAG, SATURATED)
        for seconds, cpu_sum, sessions_key, cpu_key, lag_key, saturated_key in (
            tuple(f() for f in me),
            tuple(WORKER(self.worker, f.head) for f in me),
        ):
            b.counts[seconds] += 1
            b.counts[cpu_sum] += cpu
            b.counts[sessions_key] += sessions
            b.observe(cpu_key, cpu_value)
            b.observe(lag_key, lag_value)
            if saturated:
                b.counts[saturated_key] += 1


def per_worker(total: Bucket) -> dict[str, dict[str, float | int | None]]:
    """Each generating process's CPU, loop lag and saturated seconds, from a merged bucket."""
    fields: dict[str, dict[str, float]] = {}
    for (worker, field), value in WORKER.items(total.counts):
        fields.setdefault(worker, {})[field] = value
    out: dict[str, dict[str, float | int | None]] = {}
    for worker in sorted(fields):
        f = fields[worker]
        seconds = int(f.get(SECONDS.head, 0))
        lag = percentile(total.hists.get(WORKER(worker, LOOP_LAG.head)), 99)
        out[worker] = {
            "seconds": seconds,
            "cpu_mean_pct": round(f.get(CPU_SUM.head, 0) / seconds, 1) if seconds else None,
            "cpu_max_pct": max_of(total.hists.get(WORKER(worker, CPU.head)), 100, 1),
            "loop_lag_p99_ms": None if lag is None else round(lag / 1000, 3),
            "seconds_saturated": int(f.get(SATURATED.head, 0)),
        }
    return out


class WorkerHealth(Section):
    seconds: int
    cpu_mean_pct: float | None
    cpu_max_pct: float | None
    loop_lag_p99_ms: float | None
    seconds_saturated: int


class GeneratorSection(Section):
    workers: int
    cpu_max_pct: float | None
    loop_lag_p99_ms: float | None
    seconds_saturated: int
    verdict: Literal["healthy", "saturated"]
    per_worker: dict[str, WorkerHealth]
    #: The players' network relay's own cost (collectors/network.py); null when no player used it.
    relay: dict[str, Any] | None = None


@register
class GeneratorReducer(Reducer):
    name = NAME
    models = {"generator": GeneratorSection}
    sections = ("generator",)
    table = "generator"
    columns = ("processes", "cpu_max_pct", "cpu_mean_pct", "loop_lag_p99_ms", "saturated", "sessions")
    int_columns = ("processes", "sessions")
    bool_columns = ("saturated",)

    def __init__(self) -> None:
        super().__init__()
        #: Seconds in which any generating process was saturated: tick verdicts skip them.
        self.saturated: set[int] = set()
        #: Each generating process adds one sample per second: the most in any second is their number.
        self.processes = 0
        #: worker -> (first second, last second it sampled, its open sessions then): a worker whose
        #: samples stop before the run's end was lost.
        self.workers: dict[str, tuple[int, int, int]] = {}

    def fact(self, second: int, bucket: Bucket) -> tuple[bool, int, dict[str, int]]:
        """Saturated or not, how many processes sampled, and each one's open sessions."""
        sessions = {w: int(v) for (w, field), v in WORKER.items(bucket.counts) if field == SESSIONS.head}
        for (w, field), _ in WORKER.items(bucket.counts):
            if field == SECONDS.head:
                sessions.setdefault(w, 0)
        return bool(bucket.counts.get(SATURATED())), int(bucket.counts.get(SECONDS(), 0)), sessions

    def observe(self, second: int, fact: tuple[bool, int, dict[str, int]]) -> None:
        saturated, processes, sessions = fact
        if saturated:
            self.saturated.add(second)
        self.processes = max(self.processes, processes)
        for worker, open_sessions in sessions.items():
            first = self.workers.get(worker, (second, second, 0))[0]
            self.workers[worker] = (first, second, open_sessions)

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        processes = int(bucket.counts.get(SECONDS(), 0))
        return [
            {
                "processes": processes,
                "cpu_max_pct": max_of(bucket.hists.get(CPU()), 100, digits=None),
                "cpu_mean_pct": bucket.counts.get(CPU_SUM(), 0) / processes if processes else None,
                "loop_lag_p99_ms": ms(bucket.hists.get(LOOP_LAG()), 99, digits=None),
                "saturated": bool(bucket.counts.get(SATURATED())),
                "sessions": int(bucket.counts.get(SESSIONS(), 0)),
            }
        ]

    def summarise(self, ctx: Context) -> dict[str, Any]:
        total = self.total
        return {
            "generator": {
                "workers": self.processes,
                "cpu_max_pct": max_of(total.hists.get(CPU()), 100, 1),
                "loop_lag_p99_ms": ms(total.hists.get(LOOP_LAG()), 99),
                "seconds_saturated": len(self.saturated),
                "verdict": "saturated" if self.saturated else "healthy",
                "per_worker": per_worker(total),
                "relay": _relay_cost(ctx),
            }
        }


def _relay_cost(ctx: Context) -> dict[str, Any] | None:
    """The relay's cost, kept beside the generator's health and out of every verdict."""
    from loadtest.collectors.network import relay_cost  # its owner reads its own counters

    return relay_cost(ctx.reducer("network").total)
