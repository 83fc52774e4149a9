"""A TCP relay between players and the target that gives each player the network it really has.

Linux ``netem`` is not available where the harness runs and Toxiproxy cannot be installed from our
registries, so the faults live in our own process, modelled on Toxiproxy's toxics: added
latency with jitter, a bandwidth cap, slow_close, and, as storms, ``freeze`` (the client stops
reading and sending but keeps the connection), ``blackhole`` (nothing passes either way and no
FIN ever comes: half-open), ``reset`` (an RST mid-session) and ``latency_spike``.

Each player that goes through the relay gets a loopback listener of its own (a *route*); HTTP
steps and the WebSocket connect to it, and the relay connects upstream to the target **from the
player's own source address**, so per-IP limits still see distinct players. The Host header is
untouched: the players keep the target's URL and only their TCP connect goes to the route.

The relay runs its own asyncio loop in a real OS thread (the recipe of the WebSocket engine,
``/work/shared/notes``: an original thread, an unpatched selector, only IP addresses, nothing of
gevent touched from the thread). What is timing and what is I/O are apart: :class:`Shaper` is the
sans-I/O core that says when each chunk may be delivered; the pipes only sleep until then.

What the relay saw of the server during a fault is its own evidence: when the server closed a
frozen or half-open connection (``server_closed_after_s``), or that it never did.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gevent import monkey
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

RealSocket = monkey.get_original("socket", "socket")
_start_new_thread = monkey.get_original("_thread", "start_new_thread")
_Selector = monkey.get_original("selectors", "DefaultSelector")

#: Bytes read at a time.
CHUNK = 16 * 1024
#: Bytes a pipe holds before it stops reading: a receiver's kernel buffer (a frozen client's
#: socket still takes in this much before the window closes and the server's sends back up).
WINDOW = 64 * 1024
#: Under a bandwidth cap, chunks are cut to this many seconds of the link, so delivery is smooth.
SLICE_S = 0.02
_link_ids = itertools.count(1)
#: Faulted connections remembered, at most.
MAX_RECORDS = 10_000
#: The storm kinds the relay carries out.
FAULTS = ("freeze", "blackhole", "reset", "latency_spike")


@dataclass(frozen=True)
class Conditions:
    """A player's link: every field 0 means a clean link (the relay only forwards)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kb_s: float = 0.0  # kilobytes (1000 bytes) per second each way, as Toxiproxy's; 0: no cap
    slow_close_ms: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.latency_ms or self.jitter_ms or self.bandwidth_kb_s or self.slow_close_ms)


class Shaper:
    """When each chunk of one direction may be delivered (sans-I/O: no clock, no sockets).

    The link sends at ``bandwidth`` bytes per second (a chunk departs once the link has finished
    the one before it), then each chunk travels ``latency`` ± uniform ``jitter``. TCP delivers in
    order, so a chunk never overtakes the one before it: jitter shows as bunching, not reordering.
    ``extra_ms`` is a latency spike added on top while one is under way.
    """

    def __init__(self, conditions: Conditions, rng: random.Random | None = None) -> None:
        self.conditions = conditions
        self.extra_ms = 0.0
        self._rng = rng or random.Random()
        self._link_free = 0.0
        self._last = 0.0

    @property
    def rate(self) -> float:
        """Bytes per second, 0 for no cap."""
        return self.conditions.bandwidth_kb_s * 1000.0

    def slices(self, nbytes: int) -> list[int]:
        """Cut a chunk into pieces of at most :data:`SLICE_S` of the link."""
        if not self.rate:
            return [nbytes]
        size = max(256, int(self.rate * SLICE_S))
        return [min(size, nbytes - i) for i in range(0, nbytes, size)]

    def schedule(self, now: float, nbytes: int) -> float:
        """The time (on the caller's clock, seconds) at which ``nbytes`` read at ``now`` arrive."""
        c = self.conditions
        done = now
        if self.rate:
            depart = max(now, self._link_free)
            done = self._link_free = depart + nbytes / self.rate
        delay = c.latency_ms + self.extra_ms
        if c.jitter_ms:
            delay += self._rng.uniform(-c.jitter_ms, c.jitter_ms)
        at = max(done + max(0.0, delay) / 1000.0, self._last)
        self._last = at
        return at


class FrameCounter:
    """Counts the WebSocket messages in a server's byte stream, after its ``101`` answer (sans-I/O).

    What a player on a clean link receives per second is the room's message rate as a healthy
    player sees it, apart from players whose links are slow: "10 slow readers made the tick rate
    fall for everyone" is told from "the slow readers' own ticks are late". Only frame headers are
    read; payloads are skipped, so the cost is per message, not per byte.
    """

    def __init__(self) -> None:
        self.messages = 0
        self.dead = False  # not a WebSocket stream (no 101): nothing is counted
        self._head = b""
        self._opened = False
        self._buf = b""
        self._skip = 0

    def feed(self, data: bytes) -> None:
        if self.dead:
            return
        if not self._opened:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                self.dead = len(self._head) > 16384
                return
            if not self._head.startswith(b"HTTP/1.1 101"):
                self.dead = True
                return
            data, self._head, self._opened = self._head[end + 4 :], b"", True
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        buf, pos = self._buf + data, 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                header = 4
            elif length == 127:
                header = 10
            header += 4 if b1 & 0x80 else 0
            if len(buf) - pos < header:
                break
            if length >= 126:
                length = int.from_bytes(buf[pos + 2 : pos + (4 if length == 126 else 10)], "big")
            if b0 & 0x80 and (b0 & 0x0F) in (0, 1, 2):  # the last frame of a text or binary message
                self.messages += 1
            total = header + length
            if len(buf) - pos >= total:
                pos += total
            else:
                self._skip = total - (len(buf) - pos)
                pos = len(buf)
        self._buf = buf[pos:]


@dataclass
class FaultRecord:
    """One connection caught by a fault, and what the server did about it."""

    kind: str
    started: float  # monotonic
    ended: float | None = None
    server_closed_after_s: float | None = None  # from the fault's start; None: not while watched
    ghost: bool = False  # the client's side is gone and the server's is kept open until the server closes it


@dataclass
class RelayStats:
    """Counters the relay thread writes and the gevent side reads (plain numbers: atomic reads)."""

    routes: int = 0
    connections: int = 0
    upstream_failed: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    chunks: int = 0
    planned_delay_s: float = 0.0  # what the conditions asked for
    actual_delay_s: float = 0.0  # what the chunks really waited, read to written, less any fault's hold
    overrun_max_ms: float = 0.0  # worst lateness of a chunk past its planned time
    faults: dict[str, int] = field(default_factory=dict)  # kind -> connections caught
    records: list[FaultRecord] = field(default_factory=list)
    cpu_s: float = 0.0  # the relay thread's own CPU time
    live_routes: list[Any] = field(default_factory=list)  # the relay's routes, for per-session rates

    def snapshot(self) -> dict[str, Any]:
        """A copy that is safe to read while the thread keeps writing."""
        now = time.monotonic()
        records = list(self.records)
        return {
            "sessions": [
                (link.id, link.route.conditions.clean, link.frames.messages)
                for route in list(self.live_routes)
                for link in list(route.links)
                if link.websocket and not link.frames.dead and route.mode == "pass" and not link.ghost
            ],
            "routes": self.routes,
            "connections": self.connections,
            "upstream_failed": self.upstream_failed,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "chunks": self.chunks,
            "planned_delay_s": self.planned_delay_s,
            "actual_delay_s": self.actual_delay_s,
            "overrun_max_ms": self.overrun_max_ms,
            "faults": dict(self.faults),
            "records": [
                {
                    "kind": r.kind,
                    "age_s": now - r.started,
                    "fault_s": (r.ended or now) - r.started,
                    "server_closed_after_s": r.server_closed_after_s,
                    "ended": r.ended is not None,
                    "ghost": r.ghost,
                }
                for r in records
            ],
            "cpu_s": self.cpu_s,
        }


class _Route:
    """One player's listener: its link, its upstream, and the fault it is under."""

    def __init__(self, relay: Relay, upstream: tuple[str, int], source: str | None, conditions: Conditions) -> None:
        self.relay = relay
        self.upstream = upstream
        self.source = source
        self.conditions = conditions
        self.links: set[_Link] = set()
        self.mode = "pass"  # pass, freeze, blackhole
        self.extra_ms = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.AbstractServer | None = None

    def set_conditions(self, conditions: Conditions) -> None:
        self.conditions = conditions
        for link in self.links:
            for pipe in (link.up, link.down):
                if pipe is not None:
                    pipe.shaper.conditions = conditions

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(self, reader, writer)
        self.links.add(link)
        try:
            await link.run()
        except asyncio.CancelledError:
            pass  # the relay is stopping; asyncio's server callback would log a cancelled task
        finally:
            self.links.discard(link)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0), as a lost NAT mapping or a reset peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Pipe:
    """One direction of a link: read, schedule by the shaper, deliver."""

    def __init__(self, link: _Link, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.link, self.name = link, name
        self.reader, self.writer = reader, writer
        self.shaper = Shaper(link.route.conditions, link.route.relay.rng)
        self.queue: deque[tuple[float, float, bytes]] = deque()  # (read at, deliver at, data)
        self.queued = 0
        self.changed = asyncio.Event()
        self.eof = False

    async def read_loop(self) -> None:
        route, stats = self.link.route, self.link.route.relay.stats
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self.queued >= WINDOW and route.mode != "blackhole" and not self.link.ghost:
                    self.changed.clear()
                    await self.changed.wait()
                data = await self.reader.read(CHUNK)
                if not data:
                    break
                if route.mode == "blackhole" or self.link.ghost:
                    continue  # the path is gone: what is sent is lost
                if self.name == "up":
                    if not stats.bytes_up or not self.link.websocket:
                        self.link.websocket = self.link.websocket or b"upgrade: websocket" in data[:4096].lower()
                    stats.bytes_up += len(data)
                else:
                    stats.bytes_down += len(data)
                now = loop.time()
                self.shaper.extra_ms = route.extra_ms
                offset = 0
                for size in self.shaper.slices(len(data)):
                    at = self.shaper.schedule(now, size)
                    self.queue.append((now, at, data[offset : offset + size]))
                    offset += size
                    stats.planned_delay_s += at - now
                self.queued += len(data)
                self.changed.set()
        finally:
            self.eof = True
            self.changed.set()
            if self.name == "down":
                self.link.server_closed()

    async def write_loop(self) -> None:
        route, stats = self.link.route, self.link.route.relay.stats
        loop = asyncio.get_running_loop()
        resumed = 0.0  # when a fault last let go of this pipe: what it held is not the relay's lateness
        while True:
            if self.link.ghost:
                return
            if route.mode != "pass":
                await route.flowing.wait()
                resumed = loop.time()
                continue
            if not self.queue:
                if self.eof:
                    return
                self.changed.clear()
                await self.changed.wait()
                continue
            read_at, at, data = self.queue[0]
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # a fault may have begun while waiting
            self.queue.popleft()
            self.queued -= len(data)
            self.changed.set()
            self.writer.write(data)
            if self.name == "down" and self.link.websocket:
                self.link.frames.feed(data)
            await self.writer.drain()
            now = loop.time()
            late = max(0.0, now - max(at, resumed))
            stats.chunks += 1
            stats.actual_delay_s += (at - read_at) + late
            stats.overrun_max_ms = max(stats.overrun_max_ms, late * 1000.0)

    def drop_queue(self) -> None:
        self.queue.clear()
        self.queued = 0
        self.changed.set()


class _Link:
    """One accepted connection and its upstream twin."""

    def __init__(self, route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.route = route
        self.client_reader, self.client_writer = reader, writer
        self.up_writer: asyncio.StreamWriter | None = None
        self.websocket = False  # an HTTP upgrade to WebSocket went through: a player's session
        self.frames = FrameCounter()  # messages delivered to the client
        self.id = next(_link_ids)
        self.ghost = False  # the client side is gone; the server's side is kept, silent, until it closes
        self.record: FaultRecord | None = None
        self.down: _Pipe | None = None
        self.up: _Pipe | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        route = self.route
        host, port = route.upstream
        sock = RealSocket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if route.conditions.bandwidth_kb_s:
                # A slow link's window is small: the server's sends back up soon, as they would.
                size = max(4096, int(route.conditions.bandwidth_kb_s * 1000 * 0.25))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            if route.source:
                sock.bind((route.source, 0))
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    async def run(self) -> None:
        stats = self.route.relay.stats
        stats.connections += 1
        try:
            up_reader, self.up_writer = await asyncio.wait_for(self._connect(), 10.0)
        except (OSError, TimeoutError):
            stats.upstream_failed += 1
            _rst(self.client_writer)  # the target refused: the client sees it refused too
            return
        self.up = _Pipe(self, "up", self.client_reader, self.up_writer)
        self.down = _Pipe(self, "down", up_reader, self.client_writer)
        if self.route.mode != "pass":
            self.begin(self.route.mode)  # a connection made into a fault is caught by it
        tasks = {
            name: asyncio.create_task(coro)
            for name, coro in (
                ("up_r", self.up.read_loop()),
                ("up_w", self.up.write_loop()),
                ("down_r", self.down.read_loop()),
                ("down_w", self.down.write_loop()),
            )
        }
        try:
            await self._supervise(tasks)
        finally:
            for t in tasks.values():
                t.cancel()
            for t in tasks.values():
                with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                    await t
            for w in (self.client_writer, self.up_writer):
                if w is not None and not w.is_closing():
                    w.close()

    async def _supervise(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        """Run until both directions are closed; pass each close on as the route's mode says.

        A FIN is passed on as a FIN (after ``slow_close``), an error as an RST. A ghost (the
        client's side gone after a half-open spell) ends only when the server closes its side.
        """
        slow_close = self.route.conditions.slow_close_ms / 1000.0
        names = {task: name for name, task in tasks.items()}
        pending = set(tasks.values())
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                name, failed = names[task], task.exception() is not None
                if name == "down_r":
                    if failed and not self.ghost:
                        _rst(self.client_writer)  # the server reset: so does the client's side
                        return
                    if self.ghost:
                        return
                elif name == "up_w" and failed:
                    _rst(self.client_writer)
                    return
                elif name == "down_w":
                    if failed:  # the client reset
                        if self.up_writer is not None:
                            _rst(self.up_writer)
                        return
                    if not self.ghost:
                        await self._half_close(self.client_writer, slow_close)
                elif name == "up_r" and failed and not self.ghost and self.route.mode == "pass":
                    if self.up_writer is not None:
                        _rst(self.up_writer)
                    return
                elif name == "up_w" and not self.ghost and self.up_writer is not None:
                    await self._half_close(self.up_writer, slow_close)
            if tasks["up_w"].done() and tasks["down_w"].done() and not self.ghost:
                return

    @staticmethod
    async def _half_close(writer: asyncio.StreamWriter, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()

    def server_closed(self) -> None:
        """The server's side ended (FIN or error): when, if a fault is watching this link."""
        record = self.record
        if record is not None and record.server_closed_after_s is None:
            record.server_closed_after_s = time.monotonic() - record.started

    # -- faults (loop side) -------------------------------------------------------------------

    def begin(self, kind: str) -> None:
        stats = self.route.relay.stats
        self.record = FaultRecord(kind, time.monotonic())
        # Only sessions are counted and watched for the server's close: an idle HTTP keep-alive
        # connection is the server's to keep for its own idle timeout.
        if self.websocket:
            stats.faults[kind] = stats.faults.get(kind, 0) + 1
            if len(stats.records) < MAX_RECORDS:
                stats.records.append(self.record)
        if kind == "blackhole":
            for pipe in (self.up, self.down):
                if pipe is not None:
                    pipe.drop_queue()

    def end(self, kind: str, then: str) -> None:
        if self.record is not None:
            self.record.ended = time.monotonic()
        if kind == "blackhole":
            # The path comes back but this connection's state is gone: the client learns it with an
            # RST; the server's side stays open, silent, until the server notices (its heartbeat).
            self.ghost = True
            if self.record is not None:
                self.record.ghost = self.record.server_closed_after_s is None
            _rst(self.client_writer)
            for pipe in (self.up, self.down):
                if pipe is not None:
                    pipe.drop_queue()
        elif then == "close":
            # The frozen app is killed: its system resets the connection, and the server learns it.
            self.reset(count=False)

    def reset(self, count: bool = True) -> None:
        if count and self.websocket:
            stats = self.route.relay.stats
            stats.faults["reset"] = stats.faults.get("reset", 0) + 1
        _rst(self.client_writer)
        if self.up_writer is not None:
            _rst(self.up_writer)


class Relay:
    """The relay of one process: routes made from the gevent side, served on a thread's loop."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.stats = RelayStats()
        self._routes: list[_Route] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done = False
        self._background: set[asyncio.Future[Any]] = set()  # loop side
        self._by_address: dict[tuple[str, int], _Route] = {}
        self._lock = monkey.get_original("threading", "Lock")()

    # -- caller side (gevent or a plain thread) -------------------------------------------------

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._done

    def start(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.SelectorEventLoop(_Selector())
        _start_new_thread(self._thread_main, ())

    def route(
        self, upstream: tuple[str, int], source: str | None = None, conditions: Conditions | None = None
    ) -> tuple[str, int]:
        """A listener for one player; returns its ``(address, port)``. ``upstream`` is an IP address."""
        self.start()
        assert self._loop is not None
        sock = RealSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        route = _Route(self, upstream, source, conditions or Conditions())
        with self._lock:
            self._routes.append(route)
            self.stats.live_routes = list(self._routes)
        self.stats.routes += 1
        self._loop.call_soon_threadsafe(self._serve, route, sock)
        address = sock.getsockname()[:2]
        self._by_address[address] = route
        return address

    def set_conditions(self, address: tuple[str, int], conditions: Conditions) -> None:
        """Change a route's link from now on (a stage of the run), its open connections too."""
        route = self._by_address[address]
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(route.set_conditions, conditions)

    def storm(
        self, kind: str, fraction: float = 1.0, seconds: float = 5.0, *, then: str = "resume", latency_ms: float = 500.0
    ) -> int:
        """Put ``fraction`` of the routes that have a connection under a fault; returns how many."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            live = [r for r in self._routes if r.links]
        # A share of the players with a connection, picked among those not under a fault already
        # (two faults on one route would end each other).
        free = [r for r in live if r.mode == "pass" and not r.extra_ms]
        victims = self.rng.sample(free, min(len(free), round(len(live) * fraction)))
        if victims and self._loop is not None:
            self._loop.call_soon_threadsafe(self._fault, victims, kind, seconds, then, latency_ms)
        return len(victims)

    def cpu_s(self) -> float:
        return self.stats.cpu_s

    def stop(self, timeout: float = 5.0, sleep: Callable[[float], Any] = time.sleep) -> None:
        """Close every route and connection, stop the loop, and wait (bounded) for the thread."""
        loop = self._loop
        if loop is None or self._done:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lambda: self._background.add(asyncio.ensure_future(self._shutdown())))
        deadline = time.monotonic() + timeout
        while not self._done and time.monotonic() < deadline:
            sleep(0.02)
        if not self._done:
            log.warning("network relay thread did not stop within %.0f s", timeout)

    # -- loop side ----------------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.create_task(self._clock())
            loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self.stats.cpu_s = time.thread_time()
            self._done = True

    async def _clock(self) -> None:
        """Keep the thread's CPU time current (``thread_time`` only reads the calling thread)."""
        while True:
            self.stats.cpu_s = time.thread_time()
            await asyncio.sleep(0.5)

    def _serve(self, route: _Route, sock: Any) -> None:
        async def start() -> None:
            route.server = await asyncio.start_server(route.accept, sock=sock)

        task = asyncio.ensure_future(start())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _fault(self, routes: Iterable[_Route], kind: str, seconds: float, then: str, latency_ms: float) -> None:
        routes = list(routes)
        loop = asyncio.get_running_loop()
        if kind == "reset":
            for route in routes:
                for link in list(route.links):
                    link.reset()
            return
        if kind == "latency_spike":
            for route in routes:
                route.extra_ms = latency_ms
                sessions = sum(1 for link in route.links if link.websocket)
                self.stats.faults[kind] = self.stats.faults.get(kind, 0) + sessions
            loop.call_later(seconds, self._end_spike, routes)
            return
        caught: list[_Link] = []
        for route in routes:
            route.mode = kind
            route.flowing.clear()
            for link in list(route.links):
                link.begin(kind)
                caught.append(link)
        loop.call_later(seconds, self._end_fault, routes, caught, kind, then)

    def _end_spike(self, routes: list[_Route]) -> None:
        for route in routes:
            route.extra_ms = 0.0

    def _end_fault(self, routes: list[_Route], caught: list[_Link], kind: str, then: str) -> None:
        for route in routes:
            route.mode = "pass"
            route.flowing.set()
        for link in caught:
            link.end(kind, then)

    async def _shutdown(self) -> None:
        with self._lock:
            routes = list(self._routes)
        for route in routes:
            if route.server is not None:
                route.server.close()
            for link in list(route.links):
                for w in (link.client_writer, link.up_writer):
                    if w is not None:
                        w.transport.abort()
        await asyncio.sleep(0.05)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.sleep(0)
        asyncio.get_running_loop().stop()


class RelayAdapter(HTTPAdapter):
    """Sends a player's HTTP to its relay route, keeping the target's URL in the Host header."""

    def __init__(self, route: tuple[str, int], hostname: str, **kwargs: Any) -> None:
        self._route = route
        self._hostname = hostname
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        # https through the relay: TLS is end to end, so the certificate is the target's name's.
        kwargs["server_hostname"] = self._hostname
        kwargs["assert_hostname"] = self._hostname
        super().init_poolmanager(*args, **kwargs)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(request.url)
        request.headers.setdefault("Host", parts.netloc)
        request.url = urlunsplit(parts._replace(netloc=f"{self._route[0]}:{self._route[1]}"))
        return super().send(request, *args, **kwargs)
