"""The operator's side: an admin page, a stats API, and chaos, all behind the admin token.

Chaos is how the harness rehearses production incidents on demand: ``disconnect`` drops a share
of sessions at once (a server restart, a tunnel flap), ``stall`` freezes every tick loop (a GC
pause, an overloaded host).
"""

from __future__ import annotations

import asyncio
import random
from importlib import resources

import jinja2
from aiohttp import web

from loadtest.backend.http import ApiError, json_object, same_secret
from loadtest.backend.matchmaker import Matchmaker

#: Close codes a chaos drop may use: the registered ones a real server sends when going away or
#: restarting, and the application range.
CHAOS_CLOSE_CODES = frozenset({1000, 1001, 1011, 1012, 1013}) | frozenset(range(3000, 5000))
MAX_STALL = 60.0

_templates = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("loadtest.backend").joinpath("templates", name).read_text("utf-8")
    ),
    autoescape=True,
)


class Admin:
    def __init__(self, matchmaker: Matchmaker, token: str) -> None:
        self.mm = matchmaker
        self._token = token
        self._closing: set[asyncio.Task[None]] = set()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/admin", self.page)
        app.router.add_get("/admin/api/stats", self.stats_handler)
        app.router.add_post("/admin/api/chaos", self.chaos)

    def _authorise(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(token.strip(), self._token):
            raise ApiError(401, "admin token required", headers={"WWW-Authenticate": 'Bearer realm="admin"'})

    async def stats(self) -> dict[str, object]:
        live = {room["code"]: room for gs in await self.mm.pool.stats() for room in gs["rooms"]}
        rooms = []
        for record in self.mm.rooms.rooms.values():
            running = live.get(record.code, {})
            rooms.append(
                {
                    "code": record.code,
                    "game_server": record.game_server,
                    "capacity": record.capacity,
                    "players": [{"id": pid, "name": name} for pid, name in record.members.items()],
                    "reserved": len(record.reservations),
                    "tick": running.get("tick"),
                    "tick_rate_hz": running.get("tick_rate_hz"),
                }
            )
        return {
            "players": len(self.mm.sessions),
            "rooms": sorted(rooms, key=lambda r: r["code"]),
            "game_servers": [
                {"index": s.index, "port": s.port, "alive": s.alive, "rooms": len(s.rooms)}
                for s in self.mm.pool.servers
            ],
            "tickets_live": len(self.mm.tickets.live()),
            "defects": sorted(self.mm.config.defects),
            "tick_rate": self.mm.config.tick_rate,
        }

    async def page(self, request: web.Request) -> web.Response:
        self._authorise(request)
        html = _templates.get_template("admin.html").render(stats=await self.stats())
        return web.Response(text=html, content_type="text/html")

    async def stats_handler(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return web.json_response(await self.stats())

    async def chaos(self, request: web.Request) -> web.Response:
        self._authorise(request)
        body = await json_object(request, allow_empty=False)
        action = body.get("action")
        if action == "disconnect":
            return web.json_response(await self._disconnect(body))
        if action == "stall":
            seconds = body.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= MAX_STALL:
                raise ApiError(400, f"seconds must be a number in (0, {MAX_STALL:g}]")
            servers = await self.mm.pool.stall(float(seconds))
            self.mm.metrics.chaos_stalls.inc()
            return web.json_response({"action": "stall", "seconds": seconds, "game_servers": servers})
        raise ApiError(400, "action must be 'disconnect' or 'stall'")

    async def _disconnect(self, body: dict[str, object]) -> dict[str, object]:
        fraction = body.get("fraction", 1.0)
        code = body.get("close_code", 1012)
        if not isinstance(fraction, int | float) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
            raise ApiError(400, "fraction must be a number in [0, 1]")
        if not isinstance(code, int) or isinstance(code, bool) or code not in CHAOS_CLOSE_CODES:
            raise ApiError(400, "close_code must be 1000, 1001, 1011, 1012, 1013 or 3000-4999")
        sessions = list(self.mm.sessions)
        victims = random.sample(sessions, round(len(sessions) * fraction))
        for session in victims:
            session.dropped_by_chaos = True
        self.mm.metrics.chaos_disconnects.inc(len(victims))
        # Closing waits for each client's close frame; do it in the background, all at once.
        for session in victims:
            task = asyncio.create_task(session.client.close(code=code, message=b"chaos: dropped"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return {"action": "disconnect", "dropped": len(victims), "of": len(sessions), "close_code": code}
