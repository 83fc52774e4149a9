"""The matchmaker: tokens, tickets, rooms, rate limits, and the WebSocket proxy to game servers.

This is the front door a game client sees (``docs/protocol.md``). It holds no game state: rooms
run on the game-server processes, and ``/connect`` spends a ticket and then pumps frames between
the client and the game server that hosts the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web

from loadtest.backend.config import BackendConfig
from loadtest.backend.cors import CorsPolicy
from loadtest.backend.http import ApiError, ClientAddress, error_middleware, is_text, json_object
from loadtest.backend.metrics import BackendMetrics
from loadtest.backend.pool import GameServerError, GameServerPool
from loadtest.backend.ratelimit import KeyedLimiter
from loadtest.backend.rooms import RoomFull, RoomRecord, RoomRegistry
from loadtest.backend.tickets import TicketRefused, TicketStore
from loadtest.backend.tokens import Identity, TokenAuthority, TokenRejected

log = logging.getLogger("loadtest.backend")

MAX_NAME = 32
#: Endpoints counted by name in ``gamebackend_requests_total``; anything else is "other", so a
#: scan of random paths cannot blow up the label set.
COUNTED_PATHS = frozenset(
    {
        "/request_token",
        "/join",
        "/connect",
        "/metrics",
        "/healthz",
        "/admin",
        "/admin/api/stats",
        "/admin/api/chaos",
    }
)

#: Close codes that may travel in a close frame (RFC 6455 section 7.4): not 1004-1006 or 1015.
SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(range(3000, 5000))


@dataclass(eq=False)
class Session:
    """One proxied client connection."""

    player_id: str
    room: RoomRecord
    client: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse
    dropped_by_chaos: bool = False


class Matchmaker:
    def __init__(self, config: BackendConfig, pool: GameServerPool) -> None:
        self.config = config
        self.pool = pool
        self.metrics = BackendMetrics(config.defects)
        self.tokens = TokenAuthority(
            config.jwt_secret,
            config.token_ttl,
            accept_alg_none=config.has("jwt-alg-none"),
            accept_expired=config.has("jwt-expired-ok"),
        )
        self.tickets = TicketStore(
            config.ticket_ttl,
            replayable=config.has("ticket-replay"),
            racy=config.has("ticket-race"),
            never_expire=config.has("ticket-no-expiry"),
            race_window=config.race_window,
        )
        self.rooms = RoomRegistry(config.room_capacity, config.seat_leak_s if config.has("seat-leak") else 0.0)
        self.sessions: set[Session] = set()
        self.client_address = ClientAddress(config.trusted_proxies)
        self.cors = CorsPolicy(config.cors_origins)
        limited = not config.has("no-rate-limit")
        self._token_ip = KeyedLimiter(config.token_limit) if limited else None
        self._join_ip = KeyedLimiter(config.join_ip_limit) if limited else None
        self._join_player = KeyedLimiter(config.join_player_limit) if limited else None

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._count_requests, self.cors.middleware(), error_middleware],
            client_max_size=self.config.max_body_bytes,
        )
        app.router.add_post("/request_token", self.request_token)
        app.router.add_post("/join", self.join)
        app.router.add_get("/connect", self.connect)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_get("/healthz", self.healthz)
        # Preflights are answered by the CORS middleware; the routes only make OPTIONS reachable.
        app.router.add_route("OPTIONS", "/request_token", self.request_token)
        app.router.add_route("OPTIONS", "/join", self.join)
        return app

    @web.middleware
    async def _count_requests(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        endpoint = request.path if request.path in COUNTED_PATHS else "other"
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()

    # -- rate limits -------------------------------------------------------------------------

    def _limit(self, limiter: KeyedLimiter | None, key: str, endpoint: str, scope: str) -> None:
        if limiter is None:
            return
        retry_after = limiter.check(key)
        if retry_after is not None:
            self.metrics.rate_limited.labels(endpoint, scope).inc()
            raise ApiError(429, "rate_limited", headers={"Retry-After": str(retry_after)}, retry_after=retry_after)

    # -- endpoints ---------------------------------------------------------------------------

    async def request_token(self, request: web.Request) -> web.Response:
        self._limit(self._token_ip, self.client_address.of(request), "/request_token", "ip")
        body = await json_object(request, allow_empty=True)
        name = body.get("name", "")
        if not isinstance(name, str) or not is_text(name):
            raise ApiError(400, "name must be a string of valid Unicode text")
        name = name.strip()[:MAX_NAME] or "player"
        token, identity = self.tokens.issue(name)
        self.metrics.tokens_issued.inc()
        return web.json_response({"token": token, "player_id": identity.player_id, "expires_in": int(self.tokens.ttl)})

    def _identity(self, request: web.Request) -> Identity:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.metrics.jwt_rejections.labels("missing").inc()
            raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}, reason="missing")
        try:
            return self.tokens.verify(token.strip())
        except TokenRejected as exc:
            self.metrics.jwt_rejections.labels(exc.reason).inc()
            raise ApiError(
                401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}, reason=exc.reason
            ) from None

    async def join(self, request: web.Request) -> web.Response:
        self._limit(self._join_ip, self.client_address.of(request), "/join", "ip")
        identity = self._identity(request)
        self._limit(self._join_player, identity.player_id, "/join", "player")
        body = await json_object(request, allow_empty=True)
        code, create = body.get("room"), body.get("create", False)
        if code is not None and not isinstance(code, str):
            raise ApiError(400, "room must be a room code (string)")
        if not isinstance(create, bool):
            raise ApiError(400, "create must be true or false")
        if code is not None and create:
            raise ApiError(400, "give either room or create, not both")
        try:
            room = self._choose_room(code, create, identity.player_id)
            self.rooms.reserve(room, identity.player_id, time.monotonic() + self.config.ticket_ttl)
            ticket = self.tickets.issue(identity.player_id, identity.name, room.code)
        except RoomFull:
            raise ApiError(409, "room is full", room=code) from None
        except GameServerError as exc:
            raise ApiError(503, f"no game server available: {exc}") from None
        self.metrics.tickets_issued.inc()
        self.metrics.rooms.set(len(self.rooms.rooms))
        return web.json_response(
            {
                "ticket": ticket,
                "room": room.code,
                "expires_in": self.config.ticket_ttl,
                "connect": "/connect",
            }
        )

    def _choose_room(self, code: str | None, create: bool, player_id: str) -> RoomRecord:
        if code is not None:
            room = self.rooms.get(code)
            if room is None:
                raise ApiError(404, "no such room", room=code[:16])
            if not room.has_space_for(player_id, time.monotonic()):
                raise RoomFull(room.code)
            return room
        if not create:
            room = self.rooms.quick(player_id)
            if room is not None:
                return room
        server = self.pool.pick()
        room = self.rooms.create(server.index)
        server.rooms.add(room.code)
        return room

    async def connect(self, request: web.Request) -> web.StreamResponse:
        # No permessage-deflate: ticks are tiny and compression would make the backend, not the
        # game logic, the bottleneck under load. The close timeout bounds shutdown. aiohttp
        # refuses a message whose size *equals* max_msg_size, hence the + 1: the cap is the
        # largest message allowed, and only a bigger one is closed with 1009.
        client = web.WebSocketResponse(
            max_msg_size=self.config.max_ws_message_bytes + 1,
            heartbeat=self.config.effective_heartbeat,
            compress=False,
            timeout=2.0,
        )
        if not client.can_prepare(request).ok:
            raise ApiError(400, "WebSocket upgrade required")
        ticket_id = request.query.get("ticket", "")
        try:
            ticket = await self.tickets.consume(ticket_id)
        except TicketRefused as exc:
            self.metrics.tickets_rejected.labels(exc.reason).inc()
            raise ApiError(403, f"ticket refused: {exc.reason}", reason=exc.reason) from None
        self.metrics.tickets_consumed.inc()
        room = self.rooms.get(ticket.room)
        if room is None:
            # Only reachable when a ticket outlived its room (the ticket-no-expiry defect):
            # honour the binding and bring the room back, as the broken backend would.
            server = self.pool.pick()
            room = self.rooms.rooms.setdefault(
                ticket.room, RoomRecord(ticket.room, server.index, self.config.room_capacity)
            )
            server.rooms.add(room.code)
        try:
            server = self.pool.servers[room.game_server]
            upstream = await self.pool.open_session(server, room.code, ticket.player_id, ticket.name)
        except (aiohttp.ClientError, TimeoutError, GameServerError, IndexError) as exc:
            raise ApiError(502, f"game server unavailable: {exc.__class__.__name__}") from None
        await client.prepare(request)
        session = Session(ticket.player_id, room, client, upstream)
        self.rooms.enter(room, ticket.player_id, ticket.name)
        self.sessions.add(session)
        self.metrics.ws_opened.inc()
        self.metrics.players.set(len(self.sessions))
        try:
            closed_by = await self._pump(session)
        finally:
            self.sessions.discard(session)
            if not any(s.player_id == session.player_id and s.room is room for s in self.sessions):
                self.rooms.leave(room, session.player_id)
            await upstream.close()
            self.metrics.ws_closed.labels("chaos" if session.dropped_by_chaos else closed_by).inc()
            self.metrics.players.set(len(self.sessions))
        return client

    async def _pump(self, session: Session) -> str:
        """Copy frames both ways until one side closes; return who closed ("client" or "server")."""
        client, upstream = session.client, session.upstream

        async def client_to_server() -> None:
            async for msg in client:
                if msg.type == WSMsgType.TEXT:
                    await upstream.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await upstream.send_bytes(msg.data)

        async def server_to_client() -> None:
            async for msg in upstream:
                if msg.type == WSMsgType.TEXT:
                    await client.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await client.send_bytes(msg.data)

        up = asyncio.create_task(client_to_server())
        down = asyncio.create_task(server_to_client())
        try:
            done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            for task in (up, down):
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                    await task
        if down in done and not client.closed:
            code = upstream.close_code
            if code not in SENDABLE_CLOSE_CODES:
                # A crashed game server leaves 1006 (abnormal closure), which only reports what
                # happened here and must never be sent in a close frame: the client would see a
                # protocol error instead of "server error".
                code = 1011
            await client.close(code=code, message=b"game server closed the session")
            return "server"
        return "client"

    async def metrics_handler(self, request: web.Request) -> web.Response:
        texts = await self.pool.metrics_texts()
        self.metrics.players.set(len(self.sessions))
        self.metrics.rooms.set(len(self.rooms.rooms))
        return web.Response(body=self.metrics.render(texts), content_type="text/plain", charset="utf-8")

    async def healthz(self, request: web.Request) -> web.Response:
        alive = sum(1 for s in self.pool.servers if s.alive)
        status = 200 if alive == len(self.pool.servers) else 503
        return web.json_response(
            {"status": "ok" if status == 200 else "degraded", "game_servers": alive}, status=status
        )

    # -- housekeeping ------------------------------------------------------------------------

    async def sweep_forever(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.tickets.sweep()
            for room in self.rooms.sweep():
                if room.game_server < len(self.pool.servers):
                    self.pool.servers[room.game_server].rooms.discard(room.code)
            self.metrics.rooms.set(len(self.rooms.rooms))

    async def close_all(self, code: int = 1001, reason: bytes = b"server shutting down") -> None:
        await asyncio.gather(
            *(s.client.close(code=code, message=reason) for s in list(self.sessions)),
            return_exceptions=True,
        )
