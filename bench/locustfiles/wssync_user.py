"""Baseline: a Locust user holding a ``websockets.sync`` connection, read by its own greenlet.

The other obvious choice: websockets' threaded client, whose background thread gevent turns into
a greenlet. Closed in ``on_stop`` with a bounded close timeout.
"""

from __future__ import annotations

import gevent
from _meter import METER, URL
from locust import User, constant, task
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


class WebsocketsSyncUser(User):
    wait_time = constant(1)

    def on_start(self) -> None:
        self.ws: ClientConnection | None = None
        self.reader: gevent.Greenlet | None = None
        try:
            self.ws = connect(URL, compression=None, proxy=None, open_timeout=20, close_timeout=2, legacy=True)
        except Exception as exc:
            METER.connect_failures += 1
            METER.error(f"connect: {exc!r}")
            return
        METER.connected += 1
        self.reader = gevent.spawn(self._read, self.ws)

    def _read(self, ws: ClientConnection) -> None:
        last = -1
        try:
            for raw in ws:
                last = METER.message(raw, last)
        except ConnectionClosed as exc:
            if self.ws is not None:
                METER.error(f"reader: {exc!r}")

    @task
    def hold(self) -> None:
        pass

    def on_stop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is None:
            return
        try:
            ws.close()
        except Exception as exc:
            METER.error(f"close: {exc!r}")
        if self.reader is not None:
            self.reader.kill(block=True, timeout=2)
        METER.connected -= 1
