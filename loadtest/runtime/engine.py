"""The WebSocket engine: every session of a Locust process on one asyncio loop in a real OS thread.

Why not a WebSocket client per Locust user? Measured on this kind of machine (see docs/harness.md
for the figures): ``websockets.sync`` under gevent can abort the whole process
(a libev watcher on a closed fd), and ``websocket-client`` starves other greenlets once a reader
falls behind. Asyncio clients on their own thread receive more messages per CPU-second with lower
lag, and the per-message work (parse, update aggregates) never touches gevent.

The WebSocket layer sits behind a seam (:mod:`loadtest.runtime.transport`): ``picows`` (compiled;
:mod:`~loadtest.runtime.ws_picows`) by default, on a uvloop loop, and ``websockets``
(:mod:`~loadtest.runtime.ws_websockets`) as the portable fallback; player inputs come from one
clock per rate (:mod:`loadtest.runtime.inputs`). docs/performance.md has the figures.

The rules that make this safe inside a gevent-patched process:

- the thread is a real one (``_thread.start_new_thread`` from before patching) and its loop uses an
  unpatched selector (or is uvloop's, which never sees gevent's selectors);
- host names are resolved on the gevent side; the loop only ever sees IP addresses;
- the thread never touches gevent or Locust objects. Commands go in with
  ``loop.call_soon_threadsafe``; results come out through a deque and a gevent ``async_`` watcher,
  and a greenlet hands them to :class:`SessionHandle` objects.

Locust users hold a :class:`SessionHandle`: they start, steer and stop sessions, and wait on
gevent events; the sessions themselves live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import logging
import os
import random
import ssl
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
from gevent import monkey

from loadtest.adapters.protocol import ACK, PATCH, TICK, WELCOME, Opening, Protocol, ProtocolError, loads
from loadtest.collectors.ticks import SessionTicks, TickCollector
from loadtest.runtime import transport as _transport
from loadtest.runtime.inputs import InputClock
from loadtest.runtime.transport import MAX_MESSAGE, Closed, Connection, HandshakeFailed, HandshakeRefused

log = logging.getLogger(__name__)

__all__ = ["MAX_MESSAGE", "ConnectOutcome", "SessionEnd", "SessionHandle", "SessionSpec", "WebSocketEngine"]
#: Environment variable that picks the engine thread's loop: ``uvloop`` or ``asyncio``.
LOOP_ENV = "LOADTEST_WS_LOOP"
#: Period of the loop-lag probe.
LAG_PROBE = 0.1
#: Environment variable that, set to ``0``, leaves the garbage collector alone (:class:`_GcFreezer`).
GC_FREEZE_ENV = "LOADTEST_GC_FREEZE"


class _GcFreezer:
    """Keeps the collector's full collections from stalling the engine's loop.

    Measured at 1,000 sessions (docs/performance.md): a full (generation 2) collection walked the
    process's ~125,000 tracked objects (sessions, Locust users, greenlets) in 100-320 ms on the
    shared machine, every few seconds to minutes, holding the GIL, so every tick of those
    milliseconds read as late: that was the lag p99. The sessions' objects live as long as their
    sessions, so once a ramp pauses (no session opened for a second) and the sessions have grown
    by :attr:`GROWTH` since the last time, they are moved to the permanent generation
    (``gc.freeze``, constant time); later collections walk only what is younger. Reference counting
    still frees everything; what a freeze costs is that garbage *cycles* among frozen objects wait:
    when half of the sessions frozen have ended, the collector is given them back (``unfreeze``,
    one collection, a freeze again), so churn cannot pile them up.
    """

    GROWTH = 1.1
    #: Below this many sessions a full collection is short: nothing is frozen.
    MIN_SESSIONS = 50

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.frozen = 0  # sessions alive at the last freeze
        self.freezes = 0
        self._opened = -1

    def second(self, live: int, opened: int) -> None:
        """Once a second, on the engine thread: ``live`` sessions now, ``opened`` ever."""
        quiet, self._opened = opened == self._opened, opened
        if not self.enabled or not quiet:
            return
        if self.frozen and live <= self.frozen // 2:
            gc.unfreeze()
            gc.collect()
            self.frozen = 0
        if live >= self.MIN_SESSIONS and live >= self.frozen * self.GROWTH:
            gc.freeze()
            self.frozen = live
            self.freezes += 1


@dataclass(frozen=True)
class SessionSpec:
    """Everything the engine thread needs to run one session; built on the gevent side."""

    url: str
    address: str  # resolved IP
    port: int
    protocol: Protocol
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None
    local_addr: tuple[str, int] | None = None
    input_rate: float = 20.0
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    #: Probe sessions (replay checks) are not players: their ticks stay out of the statistics.
    measure: bool = True


@dataclass(frozen=True)
class ConnectOutcome:
    ok: bool
    handshake_ms: float = 0.0
    reason: str = ""  # refused_<status>, timeout, connection_error, tls_error, handshake_error, cancelled
    status: int | None = None
    body: Any = None
    #: What the server handed out for resuming this session (see :class:`~loadtest.adapters.protocol.Opening`).
    resume: Any = None


@dataclass(frozen=True)
class SessionEnd:
    reason: str  # client, client_abort, storm_client_drop, server_<code>, abnormal, engine_stopped, error
    code: int | None
    duration_s: float
    messages: int

    @property
    def expected(self) -> bool:
        return self.reason in ("client", "client_abort", "engine_stopped")


@dataclass(eq=False)
class SessionHandle:
    """The gevent side of one session. Wait on ``connected``, ``first_tick`` and ``ended``."""

    id: int
    connected: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    first_tick: gevent.event.Event = field(default_factory=gevent.event.Event)
    ended: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


class _ThreadLogger:
    """A logger for the engine thread that hands records to the gevent side.

    ``logging`` itself must not run on the engine thread: a record asks ``threading.current_thread()``,
    which gevent has patched, and that fails on a foreign thread. websockets takes any logger-like
    object, and asyncio's exception handler is replaced, so every message crosses over as data.
    """

    def __init__(self, post: Callable[..., None], level: int = logging.WARNING) -> None:
        self._post = post
        self._level = level

    def isEnabledFor(self, level: int) -> bool:
        return level >= self._level

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        if level >= self._level:
            text = msg % args if args else str(msg)
            exc_info = kwargs.get("exc_info")
            if exc_info:
                # The traceback crosses as text: formatting it here touches no gevent object.
                if isinstance(exc_info, BaseException):
                    lines = traceback.format_exception(exc_info)
                elif isinstance(exc_info, tuple):
                    lines = traceback.format_exception(*exc_info)
                else:
                    lines = traceback.format_exc().splitlines(keepends=True)
                text += "\n" + "".join(lines).rstrip()
            self._post("log", level, text)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(logging.ERROR, msg, *args, **kwargs)


class _Live:
    """Thread-side state of one session."""

    __slots__ = ("abort", "close", "codec", "spec", "storm", "task", "ws")

    def __init__(self, spec: SessionSpec) -> None:
        self.spec = spec
        self.codec: Protocol = spec.protocol.session()
        self.ws: Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self.close = False
        self.abort = False
        self.storm = False


class WebSocketEngine:
    """Every session of one process: the gevent side's API and the engine thread's work.

    ``transport`` is ``picows`` (compiled, the default where installed) or ``websockets`` (pure
    Python); ``loop`` is ``uvloop`` (the default with picows, where installed) or ``asyncio``.
    Both default to ``$LOADTEST_WS_TRANSPORT`` / ``$LOADTEST_WS_LOOP`` when set.
    """

    def __init__(
        self,
        ticks: TickCollector,
        on_records: Callable[[list[Any]], None],
        worker: str,
        *,
        transport: str | None = None,
        loop: str | None = None,
    ) -> None:
        self.transport = _transport.choose(transport)
        self._connect = _transport.connector(self.transport)
        self.loop_kind = _choose_loop(loop, self.transport)
        self.ticks = ticks
        self._on_records = on_records
        self._worker = worker
        self._ids = itertools.count(1)
        self._handles: dict[int, SessionHandle] = {}
        self._live: dict[int, _Live] = {}  # thread side only
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._thread_done = False
        self.loop_lag_ms = 0.0  # max over the last second, written by the thread, read by gevent
        #: Sessions connected (handshake done) at the last second's roll: the players this process
        #: held. Written by the thread, read by gevent (the generator's per-worker load).
        self.connected_players = 0
        self._lag_max = 0.0
        self._tlog = _ThreadLogger(self._post)
        self._background: set[asyncio.Future[Any]] = set()  # thread side: close handshakes under way
        self._clocks: dict[float, InputClock] = {}  # thread side: input rate -> its clock
        self._opened = 0  # thread side: sessions ever started
        self._gc = _GcFreezer(os.environ.get(GC_FREEZE_ENV, "1") != "0")

    # -- gevent side ---------------------------------------------------------------------

    def start(self) -> None:
        if self._running:
            return
        if self.loop_kind == "uvloop":
            import uvloop  # libuv's own loop: it never sees gevent's patched selectors

            self._loop = uvloop.new_event_loop()
        else:
            selector_class = monkey.get_original("selectors", "DefaultSelector")
            self._loop = asyncio.SelectorEventLoop(selector_class())
        self._wake = gevent.event.Event()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._wake.set)
        self._pump = gevent.spawn(self._drain_forever)
        start_new_thread = monkey.get_original("_thread", "start_new_thread")
        self._running = True
        start_new_thread(self._thread_main, ())

    @property
    def running(self) -> bool:
        return self._running

    @property
    def open_sessions(self) -> int:
        return len(self._handles)

    def open(self, spec: SessionSpec) -> SessionHandle:
        if not self._running:
            self.start()
        handle = SessionHandle(next(self._ids))
        self._handles[handle.id] = handle
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._start_session, handle.id, spec)
        except RuntimeError:  # the engine is stopping and its loop has closed: no session starts now
            handle.connected.set(ConnectOutcome(False, reason="engine_stopped"))
            self._finish(handle, SessionEnd("engine_stopped", None, 0.0, 0))
        return handle

    def close(self, handle: SessionHandle, *, abort: bool = False, storm: bool = False) -> None:
        """Leave (a normal close handshake) or, with ``abort``, drop the TCP connection abruptly.

        A ``storm`` drop is an abort the player did not choose (a network flap): its session ends
        as ``storm_client_drop``, an unexpected end, and the player reconnects by its policy.
        """
        if self._running and self._loop is not None and not handle.ended.ready():
            with contextlib.suppress(RuntimeError):  # a loop already closed has closed every session
                self._loop.call_soon_threadsafe(self._close_session, handle.id, abort or storm, storm)

    def drop(self, fraction: float, rng: random.Random | None = None) -> int:
        """A client-side storm: abruptly drop ``fraction`` of the connected sessions at once."""
        connected = [h for h in self._handles.values() if h.connected.ready() and h.connected.value.ok]
        victims = (rng or random).sample(connected, round(len(connected) * fraction))
        for handle in victims:
            self.close(handle, storm=True)
        return len(victims)

    def stop(self, timeout: float = 10.0) -> None:
        """Close every session (bounded), stop the loop and wait for the thread to end."""
        if not self._running or self._loop is None:
            return
        self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown()))
        deadline = time.monotonic() + timeout
        while not self._thread_done and time.monotonic() < deadline:
            gevent.sleep(0.02)
        if not self._thread_done:
            log.warning("WebSocket engine thread did not stop within %.0f s", timeout)
        self._running = False
        self._drain()
        for handle in list(self._handles.values()):
            self._finish(handle, SessionEnd("engine_stopped", None, 0.0, 0))
        self._watcher.stop()
        self._pump.kill(block=False)

    def _post(self, *event: Any) -> None:
        # Called from the engine thread: deque.append is atomic, async_.send is thread-safe.
        self._outbox.append(event)
        self._watcher.send()

    def _drain_forever(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        while self._outbox:
            kind, *data = self._outbox.popleft()
            if kind == "records":
                self._on_records(data[0])
                continue
            if kind == "log":
                log.log(data[0], "engine: %s", data[1])
                continue
            handle = self._handles.get(data[0])
            if handle is None:
                continue
            if kind == "connected":
                handle.connected.set(ConnectOutcome(True, handshake_ms=data[1], resume=data[2]))
            elif kind == "failed":
                handle.connected.set(data[1])
                self._finish(handle, SessionEnd("not_connected", None, 0.0, 0))
            elif kind == "first_tick":
                handle.first_tick.set()
            elif kind == "ended":
                self._finish(handle, data[1])

    def _finish(self, handle: SessionHandle, end: SessionEnd) -> None:
        self._handles.pop(handle.id, None)
        if not handle.connected.ready():
            handle.connected.set(ConnectOutcome(False, reason="cancelled"))
        if not handle.ended.ready():
            handle.ended.set(end)

    # -- engine thread ---------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._loop_exception)
        ticker = loop.create_task(self._ticker())
        probe = loop.create_task(self._lag_probe())
        try:
            loop.run_forever()
        finally:
            tasks = [ticker, probe, *(clock.stop() for clock in self._clocks.values())]
            for task in tasks:
                if task is not None:
                    task.cancel()
            with contextlib.suppress(Exception):
                pending = [task for task in tasks if task is not None]
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.ticks.flush()
            self._post("records", self.ticks.agg.drain(self._worker))
            loop.close()
            self._thread_done = True
            self._watcher.send()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = context.get("message", "error")
        if isinstance(exc, BaseException):
            self._tlog.error("%s: %r", message, exc, exc_info=exc)
        else:
            self._post("log", logging.ERROR, message)

    def _close_later(self, ws: Connection, farewell: str | bytes | None = None) -> None:
        """Start a close handshake without waiting for it; keep the task referenced until done.

        ``farewell`` goes first, for backends that tell a leave from a drop by a message."""
        future = asyncio.ensure_future(ws.close(farewell))
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def _start_session(self, sid: int, spec: SessionSpec) -> None:
        self._opened += 1
        live = _Live(spec)
        self._live[sid] = live
        assert self._loop is not None
        live.task = self._loop.create_task(self._session_safely(sid, live))

    def _close_session(self, sid: int, abort: bool, storm: bool = False) -> None:
        live = self._live.get(sid)
        if live is None:
            return
        if live.ws is None:
            live.close = True
            if live.task is not None:
                live.task.cancel()
            return
        if abort:
            live.abort = True
            live.storm = storm
            live.ws.abort()
        else:
            live.close = True
            self._close_later(live.ws, live.codec.leave_message())

    async def _session_safely(self, sid: int, live: _Live) -> None:
        """:meth:`_session`, with a last net: whatever escapes it, the player still hears an end
        (it waits on ``connected`` and ``ended``) and the traceback reaches the log."""
        try:
            await self._session(sid, live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._tlog.error("session %d failed: %r", sid, exc, exc_info=exc)
            self._live.pop(sid, None)
            self._post("failed", sid, ConnectOutcome(False, reason="error"))

    async def _session(self, sid: int, live: _Live) -> None:
        spec = live.spec
        started = time.perf_counter()
        sock = None
        try:
            async with asyncio.timeout(spec.open_timeout):
                sock = await _transport.open_tcp(spec)
                ws = await self._connect(spec, sock, self._tlog)
        except asyncio.CancelledError:
            _close_socket(sock)
            self._post("failed", sid, ConnectOutcome(False, reason="cancelled"))
            self._live.pop(sid, None)
            return
        except Exception as exc:  # every failure becomes a counted reason, never a dead thread
            _close_socket(sock)
            outcome = _classify_failure(exc)
            if outcome.reason == "error":
                self._tlog.warning("unexpected WebSocket connect failure: %r", exc, exc_info=exc)
            self._post("failed", sid, outcome)
            self._live.pop(sid, None)
            return
        live.ws = ws
        opening = await self._open(live, ws)
        if not opening.ok:
            outcome = ConnectOutcome(False, reason=opening.reason, status=opening.status, body=opening.body)
            self._post("failed", sid, outcome)
            self._live.pop(sid, None)
            if live.abort:
                ws.abort()
            else:
                self._close_later(ws)
            return
        self._post("connected", sid, (time.perf_counter() - started) * 1000, opening.resume)
        try:
            end = await self._hold(sid, live, ws, started)
        except Exception as exc:
            # A bug here must not leave a player waiting forever: the session still ends, loudly.
            self._tlog.error("session %d failed: %r", sid, exc, exc_info=exc)
            end = SessionEnd("error", None, time.perf_counter() - started, 0)
            ws.abort()
        finally:
            self._live.pop(sid, None)
        self._post("ended", sid, end)

    async def _open(self, live: _Live, ws: Connection) -> Opening:
        """The protocol's join after the handshake (nothing for the reference protocol)."""
        try:
            async with asyncio.timeout(live.spec.open_timeout):
                return await live.codec.open(ws)
        except (Closed, asyncio.CancelledError):
            code = ws.close_code
            return Opening(False, reason=f"closed_{code}" if code is not None else "closed")
        except TimeoutError:
            return Opening(False, reason="join_timeout")
        except ProtocolError as exc:
            return Opening(False, reason=f"protocol_error_{exc.reason}")
        except Exception as exc:  # a protocol's bug, or a frame nothing anticipated: the session still ends
            self._tlog.error("joining after the handshake failed: %r", exc, exc_info=exc)
            return Opening(False, reason="protocol_error_unexpected")

    async def _hold(self, sid: int, live: _Live, ws: Connection, started: float) -> SessionEnd:
        spec = live.spec
        protocol = live.codec
        ticks = self.ticks
        if not spec.measure:
            return await self._hold_quietly(live, ws, started)
        state = ticks.open()
        clock = self._clocks.get(spec.input_rate)
        if clock is None:
            clock = self._clocks[spec.input_rate] = InputClock(spec.input_rate, self._sender_failed)
        clock.add(sid, ws, state, protocol)
        on_message, count = reader(ticks, protocol, state, functools.partial(self._post, "first_tick", sid))
        if live.close:
            self._close_later(ws, protocol.leave_message())
        try:
            await ws.run(on_message)  # raises what on_message raised: the session ends as "error"
        except asyncio.CancelledError:
            live.close = True
        finally:
            clock.remove(sid)
            ticks.close(state)
            self._live.pop(sid, None)
        code = ws.close_code
        if live.storm:
            reason = "storm_client_drop"
        elif live.abort:
            reason = "client_abort"
        elif live.close:
            reason = "client"
        elif code is not None:
            reason = f"server_{code}"
        else:
            reason = "abnormal"
        return SessionEnd(reason, code, time.perf_counter() - started, count())

    async def _hold_quietly(self, live: _Live, ws: Connection, started: float) -> SessionEnd:
        """A probe's session: read until closed, count nothing."""
        messages = 0

        def count(_raw: str | bytes) -> None:
            nonlocal messages
            messages += 1

        with contextlib.suppress(asyncio.CancelledError):
            await ws.run(count)
        code = ws.close_code
        reason = "client" if live.close or live.abort else (f"server_{code}" if code is not None else "abnormal")
        return SessionEnd(reason, code, time.perf_counter() - started, messages)

    def _sender_failed(self, exc: BaseException) -> None:
        self._tlog.error("input sender stopped: %r", exc, exc_info=exc)
        self.ticks.sender_failed()

    async def _ticker(self) -> None:
        """Once a second: close the second for every session and ship the finished aggregates."""
        while True:
            now = time.time()
            boundary = int(now) + 1
            await asyncio.sleep(boundary - now + 0.01)
            try:
                # Players are connected sessions: one still in its handshake is not yet a player.
                connected = sum(1 for live in self._live.values() if live.spec.measure and live.ws is not None)
                self.ticks.roll(boundary - 1, connected)
                self.connected_players = connected
            except Exception as exc:
                # One bad second must not end every later second's roll for the whole process.
                self._tlog.error("tick roll of second %d failed: %r", boundary - 1, exc, exc_info=exc)
                self.ticks.engine_error("roll")
            self.loop_lag_ms, self._lag_max = self._lag_max, 0.0
            self._gc.second(len(self._live), self._opened)
            try:
                records = self.ticks.agg.drain(self._worker, before=boundary)
            except Exception as exc:
                self._tlog.error("tick drain failed: %r", exc, exc_info=exc)
                continue
            if records:
                self._post("records", records)

    async def _lag_probe(self) -> None:
        """Loop lag, and the gathered histogram values put away every :data:`LAG_PROBE` seconds.

        The collector puts a second's values into its histograms in one pass when the second
        changes; at 1,000 sessions that is 120,000 values, a 3-5 ms pass (more when the machine is
        busy) during which every tick waits, once a second. A tenth of a second's values at a time
        is the same histograms (the values stay in their second) in slices too short to be lag.
        """
        loop = asyncio.get_running_loop()
        failed = False
        while True:
            expected = loop.time() + LAG_PROBE
            await asyncio.sleep(LAG_PROBE)
            self._lag_max = max(self._lag_max, (loop.time() - expected) * 1000)
            try:
                self.ticks.flush()
            except Exception as exc:
                if not failed:  # the roll flushes too, and says so every second it fails
                    failed = True
                    self._tlog.error("tick flush failed: %r", exc, exc_info=exc)

    async def _shutdown(self) -> None:
        lives = list(self._live.values())
        for live in lives:
            live.close = True
            if live.ws is not None:
                self._close_later(live.ws, live.codec.leave_message())
            elif live.task is not None:
                live.task.cancel()
        tasks = [live.task for live in lives if live.task is not None]
        if tasks:
            close_timeout = max(live.spec.close_timeout for live in lives)
            _, pending = await asyncio.wait(tasks, timeout=close_timeout + 1.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        assert self._loop is not None
        self._loop.stop()


def reader(
    ticks: TickCollector, protocol: Protocol, state: SessionTicks, first_tick: Callable[[], None]
) -> tuple[Callable[[str | bytes], None], Callable[[], int]]:
    """One session's message handler (run once per message, the hot path) and its message count.

    ``first_tick`` is called once, at the first tick or patch. What the handler reads on every
    message is bound as default arguments: local reads, and one tuple per session where closure
    cells were one object each (idle sessions' memory, bench/idle_capacity.py).
    """
    messages = 0
    first = True

    def on_message(
        raw: str | bytes,
        state: SessionTicks = state,
        parse: Callable[[str | bytes], tuple[str, int, float, int, int]] = protocol.parse_message,
        on_tick: Callable[..., None] = ticks.on_tick,
        clock: Callable[[], float] = time.time,
        tick_kind: str = TICK,
    ) -> None:
        nonlocal messages, first
        messages += 1
        now = clock()
        try:
            kind, tick, ts, ack, _players = parse(raw)
        except ProtocolError as exc:
            ticks.unreadable(exc.reason, int(now))
            return
        if kind is tick_kind:
            on_tick(state, tick, ts, ack, now, int(now))
            if first:
                first = False
                first_tick()
        elif kind is PATCH:
            ticks.on_patch(state, now, int(now), protocol.patch_interval)
            if first:
                first = False
                first_tick()
        elif kind is ACK:
            ticks.on_ack(state, ack, now, int(now))
        else:
            ticks.other(int(now), protocol.welcome_tick_rate(raw) if kind is WELCOME else None)

    def count() -> int:
        return messages

    return on_message, count


def _choose_loop(name: str | None, transport: str) -> str:
    """``name``, else ``$LOADTEST_WS_LOOP``, else uvloop with picows where installed, else asyncio."""
    name = name or os.environ.get(LOOP_ENV) or None
    if name is not None:
        if name not in ("uvloop", "asyncio"):
            raise ValueError(f"unknown engine loop {name!r} (allowed: uvloop, asyncio)")
        return name
    if transport == "picows":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
        return "uvloop"
    return "asyncio"


def _close_socket(sock: Any) -> None:
    """Close a socket whose connection failed; closing a socket twice is harmless."""
    if sock is not None:
        sock.close()


def _classify_failure(exc: BaseException) -> ConnectOutcome:
    if isinstance(exc, HandshakeRefused):
        try:
            body = loads(exc.body or b"null")
        except ProtocolError:  # not JSON, or nested deep enough to recurse: no reason to read
            body = None
        return ConnectOutcome(False, reason=f"refused_{exc.status}", status=exc.status, body=body)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return ConnectOutcome(False, reason="tls_error")
    if isinstance(exc, TimeoutError):
        return ConnectOutcome(False, reason="timeout")
    if isinstance(exc, HandshakeFailed):
        return ConnectOutcome(False, reason="handshake_error")
    if isinstance(exc, OSError):
        return ConnectOutcome(False, reason="connection_error")
    return ConnectOutcome(False, reason="error")
