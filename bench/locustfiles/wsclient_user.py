"""Baseline: a Locust user holding a ``websocket-client`` socket, read by its own greenlet.

Written the way a careful Locust user would, following the known traps: UTF-8 validation
skipped (ticks are parsed as JSON anyway), a ``gevent.sleep(0)`` every 20 messages so a reader
that has data buffered cannot starve every other greenlet, and the socket closed in ``on_stop``.
"""

from __future__ import annotations

import gevent
import websocket
from _meter import METER, URL
from locust import User, constant, task


class WebSocketClientUser(User):
    wait_time = constant(1)

    def on_start(self) -> None:
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        try:
            self.ws = websocket.create_connection(URL, timeout=20, skip_utf8_validation=True)
        except Exception as exc:
            METER.connect_failures += 1
            METER.error(f"connect: {exc!r}")
            return
        self.ws.settimeout(None)
        METER.connected += 1
        self.reader = gevent.spawn(self._read, self.ws)

    def _read(self, ws: websocket.WebSocket) -> None:
        last = -1
        n = 0
        try:
            while True:
                raw = ws.recv()
                last = METER.message(raw, last)
                n += 1
                if n % 20 == 0:
                    gevent.sleep(0)
        except (websocket.WebSocketException, OSError) as exc:
            if self.ws is not None:  # not closed by on_stop
                METER.error(f"reader: {exc!r}")

    @task
    def hold(self) -> None:
        pass

    def on_stop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is None:
            return
        try:
            ws.close(timeout=2)
        except Exception as exc:
            METER.error(f"close: {exc!r}")
        if self.reader is not None:
            self.reader.kill(block=True, timeout=2)
        METER.connected -= 1
