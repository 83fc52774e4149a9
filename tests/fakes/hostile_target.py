"""A game backend that answers badly on purpose, one way per ``--mode``.

Run as ``python tests/fakes/hostile_target.py --mode MODE``; prints ``listening on
http://127.0.0.1:PORT``. Apart from what its mode breaks, it speaks the reference protocol
correctly (opaque tokens, single-use tickets, 20 Hz ticks), so every other number of a run
against it is meaningful. ``GET /fake/stats`` tells how many requests each path received, so a
test can check that the harness did not hammer it.

Modes:

- ``malformed``: every reply is wrong in a different way, in rotation (not JSON, the wrong shape, a
  missing field; WebSocket frames that are not JSON, not objects, bad ticks, binary), with a good one
  among them now and then, so players get far enough to meet every kind (``MalformedTarget``);
- ``huge_tick``: one tick of every session carries the tick number ``10**400`` (valid JSON);
- ``bad_ts``: ticks carry ``NaN``, ``Infinity`` or ``1e308`` as their timestamp, in turn;
- ``deep_token``: ``/request_token`` answers JSON nested 100,000 deep;
- ``drip_token``: ``/request_token`` answers one byte a second, forever (a bounded forever);
- ``deep_refusal``: ``/connect`` refuses every ticket with a 403 whose JSON is nested 100,000 deep;
- ``opaque``: nothing is broken; the tokens are simply not JWTs (for the replay probe's kinds).
- ``connect_timeout``: ``/connect`` takes the TCP connection and the upgrade request, then never
  answers it (each hangs at most ``MAX_SECONDS``): every WebSocket connect times out.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import signal
import time
from collections import Counter

from aiohttp import web

MODES = ("huge_tick", "bad_ts", "deep_token", "drip_token", "deep_refusal", "opaque")
# -- connect_timeout: its own block (other modes are merged in beside it) --
MODES += ("connect_timeout",)
TICK_RATE = 20
#: Longest a session or a dripping reply lasts: every loop here is bounded.
MAX_SECONDS = 30


class HostileTarget:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: Counter[str] = Counter()
        self.tickets: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/request_token", self.request_token)
        app.router.add_post("/join", self.join)
        app.router.add_get("/connect", self.connect)
        app.router.add_get("/fake/stats", self.stats)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.requests[request.path] += 1
        return await handler(request)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": dict(self.requests)})

    async def request_token(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "deep_token":
            depth = 100_000
            return web.Response(text="[" * depth + "]" * depth, content_type="application/json")
        if self.mode == "drip_token":
            body = json.dumps({"token": "t" * 200, "player_id": "p", "expires_in": 600}).encode()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(body)
            await response.prepare(request)
            try:
                for byte in body[:MAX_SECONDS]:
                    await response.write(bytes([byte]))
                    await asyncio.sleep(1.0)
            except (ConnectionError, asyncio.CancelledError):
                pass
            return response
        token = "opaque-" + secrets.token_hex(16)  # not a JWT: no dots, no claims
        return web.json_response({"token": token, "player_id": secrets.token_hex(4), "expires_in": 600})

    async def join(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer opaque-"):
            return web.json_response({"error": "bad token", "reason": "invalid"}, status=401)
        ticket = secrets.token_urlsafe(16)
        self.tickets.add(ticket)
        return web.json_response({"ticket": ticket, "room": "ROOM", "expires_in": 10})

    async def connect(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if self.mode == "connect_timeout":
            return await self._never_upgrade(request)
        if self.mode == "deep_refusal":
            return web.Response(status=403, text="[" * 100_000 + "]" * 100_000, content_type="application/json")
        if ticket not in self.tickets:
            return web.json_response({"error": "ticket refused", "reason": "unknown"}, status=403)
        self.tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        reader = asyncio.create_task(self._read(ws))
        try:
            await ws.send_str(json.dumps({"type": "welcome", "player_id": "p", "room": "ROOM", "tick_rate": TICK_RATE}))
            bad_ts = ("NaN", "Infinity", "1e308")
            for tick in range(MAX_SECONDS * TICK_RATE):
                if ws.closed:
                    break
                ts = repr(time.time())
                number = str(tick)
                if self.mode == "huge_tick" and tick == 10:
                    number = str(10**400)
                if self.mode == "bad_ts" and tick % 5 == 4:
                    ts = bad_ts[(tick // 5) % 3]
                await ws.send_str(f'{{"type":"tick","tick":{number},"ts":{ts},"ack":0,"players":1}}')
                await asyncio.sleep(1 / TICK_RATE)
        except ConnectionError:
            pass
        finally:
            reader.cancel()
        await ws.close()
        return ws

    async def _never_upgrade(self, request: web.Request) -> web.StreamResponse:
        """``connect_timeout``: hold the upgrade request unanswered until the client gives up (it
        closes the connection) or ``MAX_SECONDS`` pass, then a 503 nobody waits for. Ending with
        the client keeps the fake's own shutdown from waiting on hung handlers."""
        self.tickets.discard(request.query.get("ticket", ""))
        for _ in range(MAX_SECONDS * 10):
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0.1)
        return web.Response(status=503, text="too late")

    @staticmethod
    async def _read(ws: web.WebSocketResponse) -> None:
        async for _ in ws:  # inputs: read and dropped
            pass


# -- malformed: its own block (other modes are merged in beside it) ------------------------------

MODES += ("malformed",)
MALFORMED_TOKEN_REPLIES = (
    "this is not json",
    json.dumps(["a", "list"]),
    json.dumps({"no_token_here": 1}),
    json.dumps({"token": "t0k3n", "player_id": "p1", "expires_in": 600}),
)
MALFORMED_JOIN_REPLIES = (
    json.dumps({"ticket": 12345}),
    "{truncated",
    json.dumps({"ticket": "good-ticket", "room": "ABCD", "expires_in": 10}),
)
MALFORMED_WS_MESSAGES = (
    "not json at all",
    json.dumps([1, 2, 3]),
    json.dumps({"type": "tick", "tick": "seven", "ts": 1.0}),
    json.dumps({"type": "tick", "tick": 1, "ts": "yesterday"}),
)


class MalformedTarget(HostileTarget):
    """``malformed``: each endpoint answers from its rotation; any ticket is let in."""

    def __init__(self, mode: str = "malformed") -> None:
        super().__init__(mode)
        self._token_replies = itertools.cycle(MALFORMED_TOKEN_REPLIES)
        self._join_replies = itertools.cycle(MALFORMED_JOIN_REPLIES)

    async def request_token(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=next(self._token_replies), content_type="application/json")

    async def join(self, request: web.Request) -> web.Response:
        return web.Response(text=next(self._join_replies), content_type="application/json")

    async def connect(self, request: web.Request) -> web.StreamResponse:
        """Every bad frame in turn, then one good tick and a binary frame, 20 times a second."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "welcome", "player_id": "p1", "room": "ABCD", "tick_rate": TICK_RATE}))
        try:
            for tick in range(1, MAX_SECONDS * TICK_RATE + 1):
                if ws.closed:
                    break
                for message in MALFORMED_WS_MESSAGES:
                    await ws.send_str(message)
                await ws.send_str(json.dumps({"type": "tick", "tick": tick, "ts": time.time(), "ack": 0}))
                await ws.send_bytes(b"\x00\x01binary")
                await asyncio.sleep(1 / TICK_RATE)
        except ConnectionError:
            pass
        await ws.close()
        return ws


#: The class that plays each mode, when not :class:`HostileTarget` itself.
TARGETS: dict[str, type[HostileTarget]] = {"malformed": MalformedTarget}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES, required=True)
    args = parser.parse_args()
    target = TARGETS.get(args.mode, HostileTarget)(args.mode)
    runner = web.AppRunner(target.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
