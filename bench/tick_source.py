"""A tick source for the benchmarks: one process that sends the same tick to every connection.

Why not the reference backend? Its rooms simulate physics and build a message per player, so at
1,000 sessions it would saturate before the generator does and the benchmark would measure the
server. Here each tick is encoded once (JSON text and WebSocket frame) and written to every
transport, so the source costs a few microseconds per message and the generator is what is measured.
The handshake, pings and close frames are websockets' own; only the steady-state tick frames
are written straight to the transport.

A client that sends inputs (``{"type":"input","seq":N,...}``) gets its latest ``seq`` back as the
``ack`` of its next tick, as a game server acknowledges inputs: that tick is encoded for that
connection alone (at 20 Hz inputs, one tick in three), so the input round trip is measured too.

Run as ``python bench/tick_source.py --rate 60 --status FILE``; it prints ``READY <port>`` and
writes its status (connections, ticks, frames skipped for slow readers) to FILE once a second.
It stops on SIGTERM/SIGINT or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import time

from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.protocol import State

#: A reader this far behind gets no more ticks until it catches up: the source must not balloon.
MAX_BUFFERED = 1 << 20


class Source:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.clients: set[ServerConnection] = set()
        self.ticks = 0
        self.frames = 0
        self.skipped = 0
        self.late_max_ms = 0.0
        self.accepted = 0
        self.inputs = 0
        #: connection -> the latest input seq not yet acknowledged
        self.unacked: dict[ServerConnection, int] = {}

    async def handler(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        self.accepted += 1
        try:
            async for message in ws:
                seq = _seq(message)
                if seq is not None:
                    self.inputs += 1
                    self.unacked[ws] = seq
        except Exception:  # noqa: S110 - a client that vanished is the client's business
            pass
        finally:
            self.clients.discard(ws)
            self.unacked.pop(ws, None)

    async def tick_loop(self, stop_at: float) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate
        deadline = loop.time()
        while loop.time() < stop_at:
            self.ticks += 1
            head = f'{{"type":"tick","tick":{self.ticks},"ts":{time.time():.6f}'
            frame = Frame(Opcode.TEXT, (head + "}").encode()).serialize(mask=False)
            unacked, self.unacked = self.unacked, {}
            for ws in list(self.clients):
                transport = ws.transport
                if ws.protocol.state is not State.OPEN or transport.is_closing():
                    continue
                if transport.get_write_buffer_size() > MAX_BUFFERED:
                    self.skipped += 1
                    continue
                seq = unacked.get(ws)
                if seq is None:
                    transport.write(frame)
                else:
                    transport.write(Frame(Opcode.TEXT, f'{head},"ack":{seq}}}'.encode()).serialize(mask=False))
                self.frames += 1
            deadline += period
            now = loop.time()
            self.late_max_ms = max(self.late_max_ms, (now - deadline) * 1000)
            if deadline < now:
                deadline = now  # overran: fall behind rather than burst
            await asyncio.sleep(deadline - now)

    def status(self) -> dict[str, float]:
        return {
            "t": time.time(),
            "connections": len(self.clients),
            "accepted": self.accepted,
            "ticks": self.ticks,
            "frames": self.frames,
            "skipped": self.skipped,
            "inputs": self.inputs,
            "late_max_ms": round(self.late_max_ms, 3),
        }


def _seq(message: str | bytes) -> int | None:
    """The ``seq`` of an input message, else None (cheaper than parsing JSON for every input)."""
    text = message if isinstance(message, str) else message.decode(errors="replace")
    start = text.find('"seq":')
    if start < 0 or '"input"' not in text:
        return None
    digits = text[start + 6 :].split(",", 1)[0].split("}", 1)[0].strip()
    return int(digits) if digits.isdigit() else None


def _write_status(path: str, status: dict[str, float]) -> None:
    """Atomically, so the benchmark never reads half a file; a few hundred bytes once a second."""
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(status, fh)
    os.replace(path + ".tmp", path)


async def main_async(args: argparse.Namespace) -> None:
    source = Source(args.rate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_at = loop.time() + args.max_seconds
    async with serve(
        source.handler,
        args.host,
        args.port,
        compression=None,
        ping_interval=None,
        backlog=4096,
        max_queue=4,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        ticker = asyncio.create_task(source.tick_loop(stop_at))
        try:
            while not stop.is_set() and loop.time() < stop_at:
                if args.status:
                    _write_status(args.status, source.status())
                    source.late_max_ms = 0.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            ticker.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=60.0, help="ticks per second (60)")
    parser.add_argument("--status", help="file to write the status JSON to, once a second")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long (3600)")
    args = parser.parse_args()
    if not args.host.startswith("127."):
        parser.error("benchmarks stay on 127.0.0.0/8")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
