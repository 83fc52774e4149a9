"""Load-generator health: is this worker measuring the server, or itself?

Each second, each worker records its process CPU and the WebSocket engine's event-loop lag. A
second in which either crosses its threshold is flagged saturated; tick analysis ignores such
seconds, so a struggling generator is never reported as a struggling server.
"""

from __future__ import annotations

import psutil

from loadtest.collectors.aggregates import Aggregator, Bucket, percentile

NAME = "generator"
CPU_SATURATED = 90.0  # percent of one core: the process is single-threaded for Python work
LOOP_LAG_SATURATED_MS = 50.0


#: Per-process keys carry the process's id after this prefix, so merged seconds still tell the
#: processes apart (the web UI's and the summary's per-worker table).
WORKER = "worker:"


class GeneratorCollector:
    def __init__(self, worker: str = "local") -> None:
        self.agg = Aggregator(NAME)
        self.worker = worker
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the first reading is meaningless

    def sample(self, second: int, loop_lag_ms: float, sessions: int) -> None:
        cpu = self._process.cpu_percent(None)
        b = self.agg.bucket(second)
        b.counts["seconds"] += 1
        b.counts["cpu_pct_sum"] += cpu
        b.counts["sessions"] += sessions
        b.observe("cpu_x100_count", max(1.0, cpu * 100))
        b.observe("loop_lag_us", max(1.0, loop_lag_ms * 1000))
        me = f"{WORKER}{self.worker}:"
        b.counts[me + "seconds"] += 1
        b.counts[me + "cpu_pct_sum"] += cpu
        b.counts[me + "sessions"] += sessions
        b.observe(me + "cpu_x100_count", max(1.0, cpu * 100))
        b.observe(me + "loop_lag_us", max(1.0, loop_lag_ms * 1000))
        if cpu >= CPU_SATURATED or loop_lag_ms >= LOOP_LAG_SATURATED_MS:
            b.counts["saturated"] += 1
            b.counts[me + "saturated"] += 1


def per_worker(total: Bucket) -> dict[str, dict[str, float | int | None]]:
    """Each generating process's CPU, loop lag and saturated seconds, from a merged bucket."""
    workers = sorted({k[len(WORKER) :].rsplit(":", 1)[0] for k in total.counts if k.startswith(WORKER)})
    out: dict[str, dict[str, float | int | None]] = {}
    for worker in workers:
        me = f"{WORKER}{worker}:"
        seconds = int(total.counts.get(me + "seconds", 0))
        cpu = total.hists.get(me + "cpu_x100_count")
        lag = total.hists.get(me + "loop_lag_us")
        out[worker] = {
            "seconds": seconds,
            "cpu_mean_pct": round(total.counts.get(me + "cpu_pct_sum", 0) / seconds, 1) if seconds else None,
            "cpu_max_pct": None if cpu is None or not cpu.get_total_count() else round(cpu.get_max_value() / 100, 1),
            "loop_lag_p99_ms": None if percentile(lag, 99) is None else round(percentile(lag, 99) / 1000, 3),
            "seconds_saturated": int(total.counts.get(me + "saturated", 0)),
        }
    return out
