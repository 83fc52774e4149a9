"""Our engine: every session of the process on one asyncio loop in a real OS thread (loadtest.runtime.engine).

Uses the engine as the harness does, minus the HTTP login and join (the tick source needs no
ticket): one :class:`WebSocketEngine` per process, a :class:`SessionHandle` per Locust user.
Every collector is on, as in a real run: lag, jitter, missed ticks, and inputs at
``$BENCH_INPUT_RATE`` Hz (20) acknowledged by the tick source, so input round trips are measured.
``$LOADTEST_WS_TRANSPORT`` / ``$LOADTEST_WS_LOOP`` pick the transport and loop (bench/ws_engine.py
sets them for its ``engine-websockets`` design).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from _meter import METER, URL
from locust import User, constant, events, task
from locust.env import Environment

from loadtest.adapters.protocol import Protocol
from loadtest.collectors.ticks import TickCollector
from loadtest.runtime.engine import SessionSpec, WebSocketEngine

_engine: WebSocketEngine | None = None
_PARTS = urlsplit(URL)
SPEC = SessionSpec(
    url=URL,
    address=_PARTS.hostname or "127.0.0.1",
    port=_PARTS.port or 80,
    protocol=Protocol(),
    input_rate=float(os.environ.get("BENCH_INPUT_RATE", "20")) or 1e-6,
    open_timeout=20.0,
    close_timeout=2.0,
)


def engine() -> WebSocketEngine:
    global _engine
    if _engine is None:
        _engine = WebSocketEngine(TickCollector(estimate_offset=False), METER.engine_records, "bench")
        _engine.start()
    return _engine


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    global _engine
    if _engine is not None:
        _engine.stop()
        _engine = None


class EngineUser(User):
    wait_time = constant(5)  # only checks that the session still runs: idle users stay asleep

    def on_start(self) -> None:
        self.handle = engine().open(SPEC)
        outcome = self.handle.connected.get(timeout=30)
        if outcome.ok:
            METER.connected += 1
        else:
            METER.connect_failures += 1
            METER.error(f"connect: {outcome.reason}")
            self.handle = None

    @task
    def hold(self) -> None:
        if self.handle is not None and self.handle.ended.ready():
            METER.connected -= 1
            METER.error(f"session ended: {self.handle.ended.get().reason}")
            self.handle = None

    def on_stop(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None and _engine is not None:
            _engine.close(handle)
            handle.ended.wait(timeout=3)
            METER.connected -= 1
