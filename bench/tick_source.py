"""A tick source for the benchmarks: one process that sends the same tick to every connection.

Why not the reference backend? Its rooms simulate physics and build a message per player, so at
1,000 sessions it would saturate before the generator does and the benchmark would measure the
server. Here each tick is encoded once (JSON text and WebSocket frame) and written to every
transport, so the source costs a few microseconds per message and the generator is what is measured.
The server is picows on uvloop (compiled), so that reading 20 Hz inputs from 1,000 clients does
not make the source the bottleneck on a shared machine; the handshake, pings and closes are
picows', and the tick frames are written straight to each transport. ``late_total_max_ms`` in the
status is how late the source's own tick loop ever ran: lag above it is the generator's.

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

import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

#: A reader this far behind gets no more ticks until it catches up: the source must not balloon.
MAX_BUFFERED = 1 << 20


class _Client(WSListener):
    """One connection: reads inputs (their seq is acked on the next tick) and answers closes."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.source.clients[self] = transport.underlying_transport
        self.source.accepted += 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif kind is WSMsgType.TEXT:
            seq = _seq(frame.get_payload_as_bytes())
            if seq is not None:
                self.source.inputs += 1
                self.source.unacked[self] = seq

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.source.clients.pop(self, None)
        self.source.unacked.pop(self, None)


def _frame(payload: bytes) -> bytes:
    """An unmasked server text frame (RFC 6455 5.2); ticks are far below 64 KiB."""
    size = len(payload)
    head = bytes((0x81, size)) if size < 126 else bytes((0x81, 126)) + size.to_bytes(2, "big")
    return head + payload


class Source:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.clients: dict[_Client, asyncio.Transport] = {}
        self.ticks = 0
        self.frames = 0
        self.skipped = 0
        self.late_max_ms = 0.0
        self.late_total_max_ms = 0.0
        self.accepted = 0
        self.inputs = 0
        #: connection -> the latest input seq not yet acknowledged
        self.unacked: dict[_Client, int] = {}

    async def tick_loop(self, stop_at: float) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.rate
        deadline = loop.time()
        while loop.time() < stop_at:
            self.ticks += 1
            head = f'{{"type":"tick","tick":{self.ticks},"ts":{time.time():.6f}'
            frame = _frame((head + "}").encode())
            unacked, self.unacked = self.unacked, {}
            for client, transport in list(self.clients.items()):
                if transport.is_closing():
                    continue
                if transport.get_write_buffer_size() > MAX_BUFFERED:
                    self.skipped += 1
                    continue
                seq = unacked.get(client)
                transport.write(frame if seq is None else _frame(f'{head},"ack":{seq}}}'.encode()))
                self.frames += 1
            deadline += period
            now = loop.time()
            late = (now - deadline) * 1000
            self.late_max_ms = max(self.late_max_ms, late)
            self.late_total_max_ms = max(self.late_total_max_ms, late)
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
            "late_total_max_ms": round(self.late_total_max_ms, 3),
        }


def _seq(message: bytes) -> int | None:
    """The ``seq`` of an input message, else None (cheaper than parsing JSON for every input)."""
    start = message.find(b'"seq":')
    if start < 0 or b'"input"' not in message:
        return None
    digits = message[start + 6 :].split(b",", 1)[0].split(b"}", 1)[0].strip()
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
    server = await ws_create_server(
        lambda _request: _Client(source),
        args.host,
        args.port,
        backlog=4096,
        enable_auto_pong=True,
        read_buffer_init_size=1024,
    )
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
        server.close()
        for client in list(source.clients):
            if client.transport is not None:
                client.transport.disconnect(graceful=False)


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
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
