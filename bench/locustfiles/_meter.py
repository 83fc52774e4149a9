"""What every benchmark Locust process measures about itself, the same way for each client design.

Per wall-clock second: messages received, missed ticks and an HDR histogram of lag against the
server's timestamp; at each second boundary: the process's CPU time (psutil), RSS and sessions
connected. Written as one JSON file (``BENCH_OUT``) when Locust quits; the benchmark script picks
its steady-state window from it. The baselines record lag and gaps per message the way a careful
user would; our engine's own tick collector already does, so its records are merged in instead.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import gevent
import psutil
from hdrh.histogram import HdrHistogram
from locust import events
from locust.env import Environment

URL = os.environ.get("BENCH_URL", "ws://127.0.0.1:9/")
OUT = os.environ.get("BENCH_OUT", "")


def new_lag() -> HdrHistogram:
    return HdrHistogram(1, 600_000_000, 2)


class Meter:
    def __init__(self) -> None:
        self.seconds: dict[int, list[Any]] = {}  # second -> [messages, missed, lag histogram]
        self.samples: list[tuple[float, float, int, int]] = []  # (t, cpu s, rss bytes, connected)
        self.connected = 0
        self.connect_failures = 0
        self.errors: list[str] = []
        self._process = psutil.Process()
        self._sampler: gevent.Greenlet | None = None

    def bucket(self, second: int) -> list[Any]:
        b = self.seconds.get(second)
        if b is None:
            b = self.seconds[second] = [0, 0, new_lag()]
        return b

    def message(self, raw: str | bytes, last: int) -> int:
        """Meter one received message as a baseline user would: parse it, count it, and record its
        lag and any gap in tick numbers. Returns the last tick number seen."""
        now = time.time()
        msg = json.loads(raw)
        if msg.get("type") != "tick":
            return last
        tick, ts = msg["tick"], msg["ts"]
        b = self.bucket(int(now))
        b[0] += 1
        if last >= 0 and tick - last > 1:
            b[1] += tick - last - 1
        b[2].record_value(min(600_000_000, max(1, int((now - ts) * 1e6))))
        return tick

    def error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text[:300])

    def engine_records(self, records: list[Any]) -> None:
        for r in records:
            if r.collector != "ticks":
                continue
            b = self.bucket(r.second)
            b[0] += int(r.counts.get("messages", 0))
            b[1] += int(r.counts.get("missed", 0))
            if "lag_us" in r.hists:
                b[2].add(HdrHistogram.decode(r.hists["lag_us"]))

    def sample(self) -> None:
        cpu = self._process.cpu_times()
        self.samples.append((time.time(), cpu.user + cpu.system, self._process.memory_info().rss, self.connected))

    def _sample_loop(self) -> None:
        for _ in range(100_000):  # bounded: about a day of seconds
            now = time.time()
            gevent.sleep(int(now) + 1 - now + 0.005)
            self.sample()

    def start(self) -> None:
        if self._sampler is None:
            self.sample()
            self._sampler = gevent.spawn(self._sample_loop)

    def write(self) -> None:
        if self._sampler is not None:
            self._sampler.kill(block=False)
        self.sample()
        if not OUT:
            return
        data = {
            "pid": os.getpid(),
            "samples": self.samples,
            "seconds": {
                str(s): {"messages": b[0], "missed": b[1], "lag": b[2].encode().decode("ascii")}
                for s, b in sorted(self.seconds.items())
            },
            "connect_failures": self.connect_failures,
            "errors": self.errors,
        }
        tmp = OUT + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, OUT)


METER = Meter()


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    METER.start()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    METER.write()
