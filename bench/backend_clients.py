"""Client side of bench/backend.py: WebSocket sessions straight into one game-server process.

Kept out of Locust on purpose: this measures the server, so the clients should cost as little as
possible (read and discard; inputs at 20 Hz like the standard player). Sessions connect to
``/internal/session`` with the internal key, 64 to a room (the default room capacity), and ramp
through ``--steps``, printing ``AT <n>`` once each step is connected, then holding ``--hold`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys

from websockets.asyncio.client import ClientConnection, connect

ROOM = 64


async def player(url: str, key: str, n: int, stop: asyncio.Event, ready: asyncio.Semaphore) -> None:
    room = f"R{n // ROOM:04d}"
    try:
        ws: ClientConnection = await connect(
            f"{url}/internal/session?room={room}&player=p{n}&name=p{n}",
            additional_headers={"X-Internal-Key": key},
            compression=None,
            proxy=None,
            open_timeout=30,
            ping_interval=None,
        )
    except Exception as exc:
        print(f"connect failed: {exc!r}", file=sys.stderr, flush=True)
        ready.release()
        return
    ready.release()
    rng = random.Random(n)

    async def inputs() -> None:
        seq = 0
        while not stop.is_set():
            await asyncio.sleep(0.05)
            seq += 1
            await ws.send(f'{{"type":"input","seq":{seq},"x":{rng.uniform(-1, 1):.3f},"y":{rng.uniform(-1, 1):.3f}}}')

    sender = asyncio.create_task(inputs())
    try:
        async for _ in ws:
            if stop.is_set():
                break
    except Exception:  # noqa: S110 - the server closing is how a run ends
        pass
    finally:
        sender.cancel()
        await ws.close()


async def main_async(args: argparse.Namespace) -> None:
    key = os.environ["LOADTEST_INTERNAL_KEY"]
    stop = asyncio.Event()
    ready = asyncio.Semaphore(0)
    tasks: list[asyncio.Task[None]] = []
    acquired = 0
    for target in args.steps:
        while len(tasks) < target:
            tasks.append(asyncio.create_task(player(args.url, key, len(tasks), stop, ready)))
            if len(tasks) % 32 == 0:
                await asyncio.sleep(0.05)  # a gentle ramp: the server's handshakes share its tick loop
        while acquired < target:
            await asyncio.wait_for(ready.acquire(), timeout=60)
            acquired += 1
        print(f"AT {target}", flush=True)
        await asyncio.sleep(args.hold)
    stop.set()
    await asyncio.wait(tasks, timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:<port> of the game server")
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], required=True)
    parser.add_argument("--hold", type=float, default=10.0)
    args = parser.parse_args()
    if not args.url.startswith("ws://127."):
        parser.error("benchmarks stay on 127.0.0.0/8")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
