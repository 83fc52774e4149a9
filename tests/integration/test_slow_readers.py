"""Slow readers against one game-server process, with real sockets (no matchmaker, no Locust).

A player whose connection backs up must cost only itself: its ticks are dropped from its own
outbox. Under ``blocking-broadcast`` the tick loop waits for its sends, and the room's tick rate
falls for everyone.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from loadtest.backend.internal import INTERNAL_KEY_ENV, INTERNAL_KEY_HEADER

TICK_RATE = 500  # fast ticks fill a slow reader's buffers in seconds


class GameServerProcess:
    def __init__(self, *flags: str) -> None:
        self.key = secrets.token_urlsafe(24)
        env = {**os.environ, INTERNAL_KEY_ENV: self.key}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtest.backend.gameserver",
                "--index",
                "0",
                "--tick-rate",
                str(TICK_RATE),
                "--substeps",
                "0",
                *flags,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.match(r"READY (\d+)", line)
        assert match, line
        self.port = int(match.group(1))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def headers(self) -> dict[str, str]:
        return {INTERNAL_KEY_HEADER: self.key}

    def room_rate(self) -> float | None:
        rooms = requests.get(self.url("/internal/stats"), headers=self.headers(), timeout=5).json()["rooms"]
        return rooms[0]["tick_rate_hz"] if rooms else None

    def dropped(self) -> float:
        text = requests.get(self.url("/metrics"), headers=self.headers(), timeout=5).text
        match = re.search(r"^gamebackend_messages_dropped_total\{[^}]*\} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _slow_reader(server: GameServerProcess, player: str) -> socket.socket:
    """A WebSocket client that does the handshake and then never reads: a tiny window, soon full."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /internal/session?room=R&player={player}&name={player} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{INTERNAL_KEY_HEADER}: {server.key}\r\n\r\n"
        ).encode()
    )
    sock.settimeout(5)
    assert b" 101 " in sock.recv(200)
    return sock


class HealthyReader:
    """A player that reads every tick, on a thread of its own."""

    def __init__(self, server: GameServerProcess) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(server,), daemon=True)
        self._thread.start()

    def _read(self, server: GameServerProcess) -> None:
        with connect(
            f"ws://127.0.0.1:{server.port}/internal/session?room=R&player=h&name=h",
            additional_headers=server.headers(),
            open_timeout=5,
            close_timeout=1,
        ) as ws:
            deadline = time.monotonic() + 60
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while not self._stop.is_set() and time.monotonic() < deadline:
                    ws.recv(timeout=2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.parametrize("defect", [False, True], ids=["outbox", "blocking-broadcast"])
def test_slow_readers_cost_only_themselves_unless_the_broadcast_blocks(defect: bool) -> None:
    server = GameServerProcess(*(["--blocking-broadcast"] if defect else []))
    slow: list[socket.socket] = []
    reader = HealthyReader(server)
    try:
        assert _wait_for(lambda: (server.room_rate() or 0) > 0.8 * TICK_RATE, 10)
        slow = [_slow_reader(server, f"s{i}") for i in range(2)]
        if defect:
            # The room's loop waits on the backed-up sockets: everyone's tick rate falls.
            assert _wait_for(lambda: (server.room_rate() or TICK_RATE) < 0.5 * TICK_RATE, 20)
        else:
            # The slow readers' own ticks are dropped, and the room keeps its rate.
            assert _wait_for(lambda: server.dropped() > 50, 20)
            rates = []
            for _ in range(5):
                rates.append(server.room_rate() or 0)
                time.sleep(0.2)
            assert min(rates) > 0.8 * TICK_RATE, rates
    finally:
        for s in slow:
            s.close()
        reader.stop()
        server.stop()
