"""Load-generator health: is this worker measuring the server, or itself?

Each second, each worker records its process CPU and the WebSocket engine's event-loop lag. A
second in which either crosses its threshold is flagged saturated; tick analysis ignores such
seconds, so a struggling generator is never reported as a struggling server.

Each sample also records the worker's load: the Locust users it was asked to run (its share of
the load shape, as Locust's master dispatched it), the users it ran, its sessions connected and
its sessions open. The integrity check compares these, per stage and per worker, with the plan;
the summary states the sessions per worker (planned and peak) for sizing.
"""

from __future__ import annotations

from dataclasses import dataclass
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
#: The worker's load: Locust users asked of it (its dispatched share), users running, sessions
#: connected (handshake done; "players"). Absent from runs recorded before they existed.
USERS_PLANNED, USERS, CONNECTED = Family("users_planned"), Family("users"), Family("connected")
#: Samples that recorded the load: with one, a load figure absent from a second was 0 (zero counts
#: are not shipped), without one it was not recorded.
LOAD_SAMPLES = Family("load_samples")
#: Each process's own figures, so merged seconds still tell the processes apart (the web UI's and
#: the summary's per-worker table): ``worker:<id>:<field>``.
WORKER = Family("worker", ("worker", "field"), greedy="worker")


class GeneratorCollector:
    def __init__(self, worker: str = "local") -> None:
        self.agg = Aggregator(NAME)
        self.worker = worker
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the first reading is meaningless

    def sample(
        self,
        second: int,
        loop_lag_ms: float,
        sessions: int,
        *,
        users: int | None = None,
        users_planned: int | None = None,
        connected: int | None = None,
    ) -> None:
        """One second of this process: its health, and its load (each load figure only when the
        caller knows it, so a missing one reads as "not recorded", never as 0)."""
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
        load = ((USERS_PLANNED, users_planned), (USERS, users), (CONNECTED, connected))
        if any(value is not None for _, value in load):
            b.counts[WORKER(self.worker, LOAD_SAMPLES.head)] += 1
        for family, value in load:
            if value is not None:
                b.counts[family()] += value
                b.counts[WORKER(self.worker, family.head)] += value


@dataclass(frozen=True)
class WorkerLoad:
    """One worker's load in one second; None where its samples did not record that figure."""

    sessions: int
    users: int | None = None
    users_planned: int | None = None
    connected: int | None = None


def _peak(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


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


def load_peaks(seconds: list[tuple[int, dict[str, WorkerLoad]]]) -> dict[str, dict[str, int | None]]:
    """Each worker's most users asked of it, users running, sessions connected and open in any
    second of ``seconds`` (a stage's, or the run's)."""
    out: dict[str, dict[str, int | None]] = {}
    by_worker: dict[str, list[WorkerLoad]] = {}
    for _, loads in seconds:
        for worker, load in loads.items():
            by_worker.setdefault(worker, []).append(load)
    for worker in sorted(by_worker):
        loads = by_worker[worker]
        out[worker] = {
            "users_planned": _peak([x.users_planned for x in loads]),
            "users_peak": _peak([x.users for x in loads]),
            "connected_peak": _peak([x.connected for x in loads]),
            "sessions_peak": max(x.sessions for x in loads),
        }
    return out


class WorkerHealth(Section):
    seconds: int
    cpu_mean_pct: float | None
    cpu_max_pct: float | None
    loop_lag_p99_ms: float | None
    seconds_saturated: int
    #: The most users Locust asked this worker to run, ran, and sessions it held connected / open
    #: in any second (None: not recorded by the code that made the run).
    users_planned: int | None = None
    users_peak: int | None = None
    connected_peak: int | None = None
    sessions_peak: int | None = None


class GeneratorSection(Section):
    workers: int
    cpu_max_pct: float | None
    loop_lag_p99_ms: float | None
    seconds_saturated: int
    verdict: Literal["healthy", "saturated"]
    per_worker: dict[str, WorkerHealth]
    #: The load on one worker: the most users Locust asked any worker to run at once (one session
    #: each), and the most sessions any worker held connected in one second.
    sessions_per_worker_planned: int | None = None
    sessions_per_worker_peak: int | None = None
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
        #: Each second's load per worker, in time order: the integrity check's users and sessions
        #: reached per stage and per worker are read off these.
        self.load: list[tuple[int, dict[str, WorkerLoad]]] = []

    def fact(self, second: int, bucket: Bucket) -> tuple[bool, int, dict[str, WorkerLoad]]:
        """Saturated or not, how many processes sampled, and each one's load."""
        fields: dict[str, dict[str, float]] = {}
        for (w, field), v in WORKER.items(bucket.counts):
            fields.setdefault(w, {})[field] = v
        loads: dict[str, WorkerLoad] = {}
        for w, f in fields.items():
            if SECONDS.head not in f and SESSIONS.head not in f:
                continue
            # A late wake-up can put two of a worker's samples into one second: their mean.
            n = max(1.0, f.get(SECONDS.head, 1.0))
            samples = f.get(LOAD_SAMPLES.head, 0)

            def load(head: str, f: dict[str, float] = f, n: float = n, samples: float = samples) -> int | None:
                return round(f.get(head, 0) / n) if samples else None

            loads[w] = WorkerLoad(
                round(f.get(SESSIONS.head, 0) / n), load(USERS.head), load(USERS_PLANNED.head), load(CONNECTED.head)
            )
        return bool(bucket.counts.get(SATURATED())), int(bucket.counts.get(SECONDS(), 0)), loads

    def observe(self, second: int, fact: tuple[bool, int, dict[str, WorkerLoad]]) -> None:
        saturated, processes, loads = fact
        if saturated:
            self.saturated.add(second)
        self.processes = max(self.processes, processes)
        for worker, load in loads.items():
            first = self.workers.get(worker, (second, second, 0))[0]
            self.workers[worker] = (first, second, load.sessions)
        if loads:
            self.load.append((second, loads))

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
        health = per_worker(total)
        peaks = load_peaks(self.load)
        for worker, row in health.items():
            row.update(peaks.get(worker, {}))
        return {
            "generator": {
                "workers": self.processes,
                "cpu_max_pct": max_of(total.hists.get(CPU()), 100, 1),
                "loop_lag_p99_ms": ms(total.hists.get(LOOP_LAG()), 99),
                "seconds_saturated": len(self.saturated),
                "verdict": "saturated" if self.saturated else "healthy",
                "per_worker": health,
                "sessions_per_worker_planned": _peak([p["users_planned"] for p in peaks.values()]),
                "sessions_per_worker_peak": _peak([p["connected_peak"] for p in peaks.values()]),
                "relay": _relay_cost(ctx),
            }
        }


def _relay_cost(ctx: Context) -> dict[str, Any] | None:
    """The relay's cost, kept beside the generator's health and out of every verdict."""
    from loadtest.collectors.network import relay_cost  # its owner reads its own counters

    return relay_cost(ctx.reducer("network").total)
