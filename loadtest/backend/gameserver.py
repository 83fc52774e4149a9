"""A game-server process: rooms, their authoritative tick loops, and an internal API.

The matchmaker starts one of these per ``--game-servers`` and proxies each player's WebSocket to
``/internal/session`` here, as a matchmaker in front of dedicated servers does. Everything on this
port requires the internal key the matchmaker passed in the environment, so a stray client on the
loopback interface cannot bypass tickets.

Run as ``python -m loadtest.backend.gameserver``; it prints ``READY <port>`` once listening and
exits when its standard input closes, so it never outlives the matchmaker that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator

import psutil
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily

from loadtest.backend.http import JsonErrorRunner, same_secret
from loadtest.backend.internal import INTERNAL_KEY_ENV, INTERNAL_KEY_HEADER
from loadtest.backend.simulation import InvalidInput, RoomSimulation, parse_input

#: Ticks waiting for one player before the newest are dropped (two seconds at 60 Hz): a slow
#: reader must never hold up the room's tick loop.
OUTBOX_LIMIT = 120
#: Window over which the effective tick rate is measured.
RATE_WINDOW = 1.0
#: Bytes a player's connection buffers before a send waits (aiohttp's writer limit and the socket's
#: send buffer): small, so a slow reader shows within seconds, in its outbox or, under the
#: ``blocking-broadcast`` defect, in everyone's tick rate.
SEND_BUFFER = 16 * 1024
TICK_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.0125, 0.0167, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class _Metrics:
    def __init__(self, server: GameServer) -> None:
        disable_created_metrics()
        self.registry = CollectorRegistry()
        label = {"game_server": str(server.index)}
        self.tick_duration = Histogram(
            "gamebackend_tick_duration_seconds",
            "Wall time spent simulating and broadcasting one tick.",
            ["game_server"],
            buckets=TICK_BUCKETS,
            registry=self.registry,
        ).labels(**label)
        self.ticks = Counter(
            "gamebackend_ticks", "Ticks run, all rooms.", ["game_server"], registry=self.registry
        ).labels(**label)
        self.invalid_inputs = Counter(
            "gamebackend_invalid_inputs",
            "Client messages ignored because they were not valid input.",
            ["game_server"],
            registry=self.registry,
        ).labels(**label)
        self.dropped = Counter(
            "gamebackend_messages_dropped",
            "Server messages dropped because a player's outbox was full (slow reader).",
            ["game_server"],
            registry=self.registry,
        ).labels(**label)
        self.registry.register(_LiveCollector(server))


class _LiveCollector:
    """Gauges read at scrape time, so they are never stale."""

    def __init__(self, server: GameServer) -> None:
        self._server = server
        self._process = psutil.Process()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gs = str(self._server.index)
        memory = GaugeMetricFamily(
            "gamebackend_game_server_memory_bytes",
            "Resident memory of this game-server process (what slow readers' buffers cost it).",
            labels=["game_server"],
        )
        memory.add_metric([gs], self._process.memory_info().rss)
        yield memory
        players = GaugeMetricFamily(
            "gamebackend_game_server_players",
            "Players connected to this game server.",
            labels=["game_server"],
        )
        players.add_metric([gs], sum(len(r.sessions) for r in self._server.rooms.values()))
        yield players
        rooms = GaugeMetricFamily(
            "gamebackend_game_server_rooms", "Rooms running on this game server.", labels=["game_server"]
        )
        rooms.add_metric([gs], len(self._server.rooms))
        yield rooms
        rates = [r.effective_rate() for r in self._server.rooms.values()]
        rates = [r for r in rates if r is not None]
        if rates:
            family = GaugeMetricFamily(
                "gamebackend_game_server_tick_rate_hz",
                "Effective tick rate over the last second: the slowest room (min) and the mean.",
                labels=["game_server", "stat"],
            )
            family.add_metric([gs, "min"], min(rates))
            family.add_metric([gs, "mean"], sum(rates) / len(rates))
            yield family


class _Session:
    """One player's connection inside a room, with its own sender so a slow reader stalls no one."""

    def __init__(self, ws: web.WebSocketResponse, metrics: _Metrics) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX_LIMIT)
        self._metrics = metrics
        self.sender = asyncio.create_task(self._send_loop())

    def send(self, message: str) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self._metrics.dropped.inc()

    async def _send_loop(self) -> None:
        while True:
            message = await self.outbox.get()
            try:
                await self.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return

    async def close(self, code: int, reason: bytes) -> None:
        self.sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sender
        await self.ws.close(code=code, message=reason)


class Room:
    """One room and its tick loop; the loop ends when the last player leaves."""

    def __init__(self, code: str, server: GameServer) -> None:
        self.code = code
        self.server = server
        self.sim = RoomSimulation(server.substeps)
        self.sessions: dict[str, _Session] = {}
        self.tick = 0
        self._samples: deque[tuple[float, int]] = deque(maxlen=4 * int(server.tick_rate) + 8)
        self._joined = 0
        self.task: asyncio.Task[None] | None = None

    def effective_rate(self) -> float | None:
        """Ticks per second over the last :data:`RATE_WINDOW`, from tick numbers and timestamps.

        A stalled loop produces no samples, so while the newest tick is overdue the window is
        measured up to now: a frozen room reads as slow instead of keeping its last good rate.
        """
        if not self._samples:
            return None
        now = time.time()
        window = [(ts, tick) for ts, tick in self._samples if ts >= now - RATE_WINDOW]
        if len(window) < 2:
            return 0.0
        (start_ts, start_tick), (end_ts, end_tick) = window[0], window[-1]
        overdue = now - end_ts > 3 / self.server.tick_rate
        span = (now if overdue else end_ts) - start_ts
        return (end_tick - start_tick) / span if span > 0 else None

    async def join(self, player_id: str, name: str, ws: web.WebSocketResponse) -> _Session:
        old = self.sessions.pop(player_id, None)
        if old is not None:
            await old.close(4001, b"replaced by a newer connection")
        session = _Session(ws, self.server.metrics)
        self.sessions[player_id] = session
        self._joined += 1
        self.sim.add(player_id, name, self._joined)
        session.send(
            json.dumps(
                {
                    "type": "welcome",
                    "player_id": player_id,
                    "room": self.code,
                    "tick_rate": self.server.tick_rate,
                }
            )
        )
        self._send_lobby()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        return session

    def leave(self, player_id: str, session: _Session) -> None:
        if self.sessions.get(player_id) is not session:
            return  # already replaced by a newer connection of the same player
        del self.sessions[player_id]
        self.sim.remove(player_id)
        session.sender.cancel()
        self._send_lobby()
        if not self.sessions:
            self.server.rooms.pop(self.code, None)
            if self.task is not None:
                self.task.cancel()

    def _send_lobby(self) -> None:
        message = json.dumps(
            {
                "type": "lobby",
                "room": self.code,
                "players": [{"id": pid, "name": self.sim.players[pid].name} for pid in self.sessions],
            }
        )
        for session in self.sessions.values():
            session.send(message)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.server.tick_rate
        deadline = loop.time()
        metrics = self.server.metrics
        while self.sessions:
            stall = self.server.stalled_until - loop.time()
            if stall > 0:
                await asyncio.sleep(stall)
                deadline = loop.time()
            started = time.perf_counter()
            ts = time.time()
            self.tick += 1
            self.sim.step(period)
            if self.server.blocking_broadcast:
                await self._broadcast_blocking(ts)
            else:
                self._broadcast(ts)
            self._samples.append((ts, self.tick))
            metrics.ticks.inc()
            metrics.tick_duration.observe(time.perf_counter() - started)
            deadline += period
            now = loop.time()
            if deadline < now:
                # Overran: start the next tick now instead of bursting to catch up, so the
                # effective rate falls and tick timestamps show it.
                deadline = now
            await asyncio.sleep(deadline - now)

    def _broadcast(self, ts: float) -> None:
        players = self.sim.players
        prefix = f'{{"type":"tick","tick":{self.tick},"ts":{ts:.6f},"players":{len(self.sessions)},'
        for player_id, session in self.sessions.items():
            p = players[player_id]
            session.send(f'{prefix}"ack":{p.ack},"state":{{"x":{p.x:.2f},"y":{p.y:.2f},"near":{p.near}}}}}')

    async def _broadcast_blocking(self, ts: float) -> None:
        """The ``blocking-broadcast`` defect: the tick waits until each player's socket took its tick,
        so one player whose connection is backed up holds the tick loop of the whole room."""
        players = self.sim.players
        prefix = f'{{"type":"tick","tick":{self.tick},"ts":{ts:.6f},"players":{len(self.sessions)},'
        for player_id, session in list(self.sessions.items()):
            p = players.get(player_id)
            if p is None or session.ws.closed:
                continue  # left while an earlier send waited
            message = f'{prefix}"ack":{p.ack},"state":{{"x":{p.x:.2f},"y":{p.y:.2f},"near":{p.near}}}}}'
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.ws.send_str(message)


class GameServer:
    def __init__(self, index: int, tick_rate: float, substeps: int, key: str, blocking_broadcast: bool = False) -> None:
        self.index = index
        self.blocking_broadcast = blocking_broadcast
        self.tick_rate = tick_rate
        self.substeps = substeps
        self.rooms: dict[str, Room] = {}
        self.stalled_until = 0.0
        self._key = key
        self.metrics = _Metrics(self)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._require_key])
        app.router.add_get("/internal/session", self.session)
        app.router.add_post("/internal/stall", self.stall)
        app.router.add_get("/internal/stats", self.stats)
        app.router.add_get("/metrics", self.metrics_handler)
        return app

    @web.middleware
    async def _require_key(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        if not same_secret(request.headers.get(INTERNAL_KEY_HEADER, ""), self._key):
            return web.json_response({"error": "forbidden"}, status=403)
        return await handler(request)

    async def session(self, request: web.Request) -> web.WebSocketResponse:
        code = request.query.get("room", "")
        player_id = request.query.get("player", "")
        name = request.query.get("name", "")
        ws = web.WebSocketResponse(max_msg_size=64 * 1024, compress=False, timeout=2.0, writer_limit=SEND_BUFFER)
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        await ws.prepare(request)
        room = self.rooms.get(code)
        if room is None:
            room = self.rooms[code] = Room(code, self)
        session = await room.join(player_id, name, ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    self.metrics.invalid_inputs.inc()
                    continue
                try:
                    seq, x, y = parse_input(json.loads(msg.data))
                except (ValueError, InvalidInput, RecursionError):
                    # RecursionError: deeply nested JSON ("[[[[...") is bad input like any other,
                    # not a reason to drop the player.
                    self.metrics.invalid_inputs.inc()
                    continue
                room.sim.apply_input(player_id, seq, x, y)
        finally:
            room.leave(player_id, session)
        return ws

    async def stall(self, request: web.Request) -> web.Response:
        try:
            seconds = float((await request.json())["seconds"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'body must be {"seconds": <number>}'}, status=400)
        loop = asyncio.get_running_loop()
        self.stalled_until = max(self.stalled_until, loop.time() + seconds)
        return web.json_response({"stalled_for": seconds})

    async def stats(self, request: web.Request) -> web.Response:
        rooms = [
            {
                "code": room.code,
                "players": [{"id": pid, "name": room.sim.players[pid].name} for pid in room.sessions],
                "tick": room.tick,
                "tick_rate_hz": room.effective_rate(),
            }
            for room in self.rooms.values()
        ]
        return web.json_response({"index": self.index, "rooms": rooms})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), content_type="text/plain")


async def _serve(args: argparse.Namespace) -> None:
    key = os.environ.get(INTERNAL_KEY_ENV, "")
    if len(key) < 16:
        raise SystemExit(f"{INTERNAL_KEY_ENV} must hold the internal key the matchmaker generated")
    server = GameServer(args.index, args.tick_rate, args.substeps, key, blocking_broadcast=args.blocking_broadcast)
    runner = JsonErrorRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY {port}", flush=True)
    # Exit when the matchmaker closes our stdin (or dies): never outlive it.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="loadtest.backend.gameserver")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tick-rate", type=float, default=60.0)
    parser.add_argument("--substeps", type=int, default=10)
    parser.add_argument("--blocking-broadcast", action="store_true", help="the blocking-broadcast defect")
    args = parser.parse_args(argv)
    # The matchmaker owns shutdown: a Ctrl-C in the terminal reaches it, and it closes our stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
