"""A deliberately broken game backend: every reply is wrong in a different way, in rotation.

Run as ``python tests/fakes/malformed_backend.py``; prints ``listening on http://127.0.0.1:PORT``.
The harness must turn each of these into a counted protocol error and keep its players alive.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time

from aiohttp import web

TOKEN_REPLIES = itertools.cycle(
    [
        (200, "this is not json"),
        (200, json.dumps(["a", "list"])),
        (200, json.dumps({"no_token_here": 1})),
        (200, json.dumps({"token": "t0k3n", "player_id": "p1", "expires_in": 600})),
    ]
)
JOIN_REPLIES = itertools.cycle(
    [
        (200, json.dumps({"ticket": 12345})),
        (200, "{truncated"),
        (200, json.dumps({"ticket": "good-ticket", "room": "ABCD", "expires_in": 10})),
    ]
)
WS_MESSAGES = [
    "not json at all",
    json.dumps([1, 2, 3]),
    json.dumps({"type": "tick", "tick": "seven", "ts": time.time()}),
    json.dumps({"type": "tick", "tick": 1, "ts": "yesterday"}),
]


async def request_token(request: web.Request) -> web.Response:
    status, body = next(TOKEN_REPLIES)
    return web.Response(status=status, text=body, content_type="application/json")


async def join(request: web.Request) -> web.Response:
    status, body = next(JOIN_REPLIES)
    return web.Response(status=status, text=body, content_type="application/json")


async def connect(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(json.dumps({"type": "welcome", "player_id": "p1", "room": "ABCD", "tick_rate": 20}))
    tick = 0
    try:
        for _ in range(200):  # bounded: at most 10 s of messages per session
            for message in WS_MESSAGES:
                await ws.send_str(message)
            tick += 1
            await ws.send_str(json.dumps({"type": "tick", "tick": tick, "ts": time.time(), "ack": 0}))
            await ws.send_bytes(b"\x00\x01binary")
            await asyncio.sleep(0.05)
    except ConnectionError:
        pass
    return ws


async def main() -> None:
    app = web.Application()
    app.router.add_post("/request_token", request_token)
    app.router.add_post("/join", join)
    app.router.add_get("/connect", connect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
