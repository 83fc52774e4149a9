"""Another team's backend of the same shape: log in, trade the token for a seat, play over a WebSocket.

Run as ``python tests/fakes/other_shape.py [--tick-rate 30] [--no-gauge] ...``; prints
``listening on http://127.0.0.1:PORT``. It is the reference flow with everything a harness could
have hard-coded changed, so a run against it proves that only ``[protocol]`` settings were needed:

- paths ``POST /api/v2/auth``, ``POST /api/v2/match``, ``GET /ws/play?seat=…``;
- replies ``{"access_token", "user", "ttl"}`` and ``{"seat", "match", "ttl"}``; the auth scheme is
  ``Token``; messages are ``{"kind": "state", "frame", "time", "last_input", "count"}`` and inputs
  ``{"kind": "move", "n", …}``;
- 30 Hz by default, and **no welcome message**: the nominal rate is said only by the
  ``shape_nominal_tick_rate_hz`` gauge on ``/metrics`` (left out with ``--no-gauge``);
- no chaos endpoint: ``SIGHUP`` "restarts the game servers" as a rollout would, closing every play
  session with 1012 (service restart) and counting them in ``shape_sessions_restarted_total``;
  a 429 carries a whole-second ``Retry-After`` and its own body
  (``{"message": "slow down", "code": "THROTTLED"}``); a refused seat is a 403
  ``{"message": …, "code": "SEAT_REFUSED"}``;
- Prometheus ``/metrics`` with its own counters (``shape_throttled_total{route}``,
  ``shape_seats_refused_total{why}``, ``shape_seats_issued_total``, ``shape_sessions_opened_total``)
  so a test can compare the harness's counts with the server's.

Tokens are opaque (not JWTs), seats are single-use and expire after ``--seat-ttl`` seconds. Rate
limits are per client address, one token bucket per route. CORS preflights are answered for the
``--cors-origin`` origins only. Every loop is bounded: a session lasts at most ``MAX_SECONDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import signal
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest

AUTH, MATCH, PLAY, METRICS = "/api/v2/auth", "/api/v2/match", "/ws/play", "/metrics"
#: The ``[protocol]`` settings that fit this backend (``--set protocol.KEY=VALUE`` for each).
PROTOCOL = {
    "token_path": AUTH,
    "join_path": MATCH,
    "connect_path": PLAY,
    "auth_scheme": "Token",
    "ticket_param": "seat",
    "token_field": "access_token",
    "player_id_field": "user",
    "expires_in_field": "ttl",
    "ticket_field": "seat",
    "room_field": "match",
    "type_field": "kind",
    "tick_field": "frame",
    "timestamp_field": "time",
    "ack_field": "last_input",
    "players_field": "count",
    "seq_field": "n",
    "welcome_type": "hello",
    "tick_type": "state",
    "input_type": "move",
}
THROTTLED_BODY = {"message": "slow down", "code": "THROTTLED"}
#: Longest a session lasts: every loop here is bounded.
MAX_SECONDS = 120
#: Named so the harness finds it by its default rule (a name ending in ``_nominal_tick_rate_hz``).
TICK_GAUGE = "shape_nominal_tick_rate_hz"


class Bucket:
    """A token bucket: ``rate`` per second, ``burst`` deep."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> int | None:
        """None if allowed, else whole seconds until a token is back (rounded up, at least 1)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return max(1, math.ceil((1 - self.tokens) / self.rate))


class OtherShape:
    def __init__(self, args: argparse.Namespace) -> None:
        self.tick_rate: float = args.tick_rate
        self.seat_ttl: float = args.seat_ttl
        self.limits = {AUTH: (args.auth_rate, args.auth_burst), MATCH: (args.match_rate, args.match_burst)}
        self.cors_origins = set(args.cors_origin)
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.tokens: set[str] = set()
        self.seats: dict[str, float] = {}  # seat -> expiry (monotonic)
        self.used: set[str] = set()
        disable_created_metrics()
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.throttled = Counter("shape_throttled", "Requests answered 429, by route.", ["route"], registry=r)
        self.refused = Counter("shape_seats_refused", "Seats refused at /ws/play, by why.", ["why"], registry=r)
        self.issued = Counter("shape_seats_issued", "Seats handed out.", registry=r)
        self.opened = Counter("shape_sessions_opened", "Play sessions opened.", registry=r)
        self.restarted = Counter("shape_sessions_restarted", "Play sessions closed by a restart (SIGHUP).", registry=r)
        self.sessions: set[web.WebSocketResponse] = set()
        self.bad_tokens = Counter("shape_bad_tokens", "Match requests with an unknown token.", registry=r)
        for route in (AUTH, MATCH):
            self.throttled.labels(route)
        for why in ("unknown", "used", "expired"):
            self.refused.labels(why)
        if not args.no_gauge:
            Gauge(TICK_GAUGE, "Nominal ticks per second of the game loop.", registry=r).set(self.tick_rate)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._cors])
        app.router.add_post(AUTH, self.auth)
        app.router.add_post(MATCH, self.match)
        app.router.add_get(PLAY, self.play)
        app.router.add_get(METRICS, self.metrics)
        return app

    @web.middleware
    async def _cors(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            response = web.Response(status=204)
            if origin in self.cors_origins:
                response.headers.update(
                    {
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": "POST",
                        "Access-Control-Allow-Headers": "Authorization, Content-Type",
                        "Vary": "Origin",
                    }
                )
            return response
        return await handler(request)

    def _throttle(self, request: web.Request, route: str) -> web.Response | None:
        key = (route, request.remote or "")
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(*self.limits[route])
        wait = bucket.take()
        if wait is None:
            return None
        self.throttled.labels(route).inc()
        return web.json_response(THROTTLED_BODY, status=429, headers={"Retry-After": str(wait)})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    async def auth(self, request: web.Request) -> web.Response:
        refused = self._throttle(request, AUTH)
        if refused is not None:
            return refused
        token = "tk_" + secrets.token_hex(16)
        self.tokens.add(token)
        return web.json_response({"access_token": token, "user": "u" + secrets.token_hex(4), "ttl": 600})

    async def match(self, request: web.Request) -> web.Response:
        refused = self._throttle(request, MATCH)
        if refused is not None:
            return refused
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Token" or token not in self.tokens:
            self.bad_tokens.inc()
            return web.json_response({"message": "who are you", "code": "BAD_TOKEN"}, status=401)
        seat = secrets.token_urlsafe(16)
        self.seats[seat] = time.monotonic() + self.seat_ttl
        self.issued.inc()
        return web.json_response({"seat": seat, "match": "M1", "ttl": self.seat_ttl})

    async def play(self, request: web.Request) -> web.StreamResponse:
        seat = request.query.get("seat", "")
        expiry = self.seats.pop(seat, None)
        why = "used" if seat in self.used else "unknown" if expiry is None else None
        if expiry is not None and time.monotonic() > expiry:
            why = "expired"
        if why is not None:
            self.refused.labels(why).inc()
            return web.json_response({"message": f"seat {why}", "code": "SEAT_REFUSED"}, status=403)
        self.used.add(seat)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.opened.inc()
        self.sessions.add(ws)
        last = [0]
        reader = asyncio.create_task(self._read(ws, last))
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for frame in range(int(MAX_SECONDS * self.tick_rate)):
                if ws.closed:
                    break
                message = {"kind": "state", "frame": frame, "time": time.time(), "last_input": last[0], "count": 1}
                await ws.send_str(json.dumps(message))
                # Paced by the clock, not by sleeps that add up: the rate is the nominal one.
                await asyncio.sleep(max(0.0, start + (frame + 1) / self.tick_rate - loop.time()))
        except ConnectionError:
            pass
        finally:
            reader.cancel()
            self.sessions.discard(ws)
        await ws.close()
        return ws

    def restart(self) -> None:
        """What a rollout does to the players: every session ends with 1012, and they must come back."""
        for ws in list(self.sessions):
            self.sessions.discard(ws)
            self.restarted.inc()
            asyncio.get_running_loop().create_task(ws.close(code=1012, message=b"restarting"))

    @staticmethod
    async def _read(ws: web.WebSocketResponse, last: list[int]) -> None:
        async for msg in ws:
            try:
                n = json.loads(msg.data).get("n")
            except (ValueError, AttributeError, TypeError):
                continue
            if isinstance(n, int):
                last[0] = n


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--tick-rate", type=float, default=30.0)
    p.add_argument("--no-gauge", action="store_true", help="no tick-rate gauge on /metrics")
    p.add_argument("--seat-ttl", type=float, default=10.0)
    p.add_argument("--auth-rate", type=float, default=1000.0)
    p.add_argument("--auth-burst", type=int, default=1000)
    p.add_argument("--match-rate", type=float, default=1000.0)
    p.add_argument("--match-burst", type=int, default=1000)
    p.add_argument("--cors-origin", action="append", default=["http://localhost:8060"])
    return p.parse_args()


async def main() -> None:
    backend = OtherShape(parse_args())
    runner = web.AppRunner(backend.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, backend.restart)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
