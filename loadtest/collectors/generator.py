"""Load-generator health: is this worker measuring the server, or itself?

Each second, each worker records its process CPU and the WebSocket engine's event-loop lag. A
second in which either crosses its threshold is flagged saturated; tick analysis ignores such
seconds, so a struggling generator is never reported as a struggling server.
"""

from __future__ import annotations

import psutil

from loadtest.aggregates import Aggregator

NAME = "generator"
CPU_SATURATED = 90.0  # percent of one core: the process is single-threaded for Python work
LOOP_LAG_SATURATED_MS = 50.0


class GeneratorCollector:
    def __init__(self) -> None:
        self.agg = Aggregator(NAME)
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
        if cpu >= CPU_SATURATED or loop_lag_ms >= LOOP_LAG_SATURATED_MS:
            b.counts["saturated"] += 1
