"""The portable transport: ``websockets``' asyncio client behind the engine's seam.

Pure Python, so it runs wherever Python does; the compiled ``picows`` transport
(:mod:`loadtest.runtime.ws_picows`) receives about twice the messages per CPU-second and is the
default where it is installed. Framing, limits, pings and closing are websockets' own.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode

from loadtest.runtime.transport import MAX_MESSAGE, Closed, Handler, HandshakeFailed, HandshakeRefused, Spec

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class _Connection(ClientConnection):
    """A client connection that hands each whole message to ``on_message`` as its frame is parsed.

    Why: websockets' ``async for`` path queues every message in an assembler and wakes the reading
    task through a future; at 500 sessions of 60 Hz ticks that machinery was about a fifth of the
    engine thread (bench/ws_engine.py, docs/performance.md). ``process_event`` is the method
    websockets' own subclasses override to see events; framing, limits, pings and closing stay
    websockets'. A fragmented message or text that is not valid UTF-8 takes websockets' normal
    path (iterate the connection to get it), and from then on every message of that connection
    does, so messages are never reordered. While ``on_message`` is None (the handshake, a
    protocol's join) nothing changes.
    """

    on_message: Handler | None = None
    #: An exception raised by ``on_message``: the connection was aborted; the owner re-raises it.
    failure: BaseException | None = None
    _slow = False

    def process_event(self, event: Any) -> None:
        handler = self.on_message
        if handler is None or not isinstance(event, Frame) or event.opcode not in _DATA:
            super().process_event(event)
            return
        if self._slow or not event.fin:
            self._slow = True
            super().process_event(event)
            return
        data = event.data if isinstance(event.data, bytes) else bytes(event.data)
        if event.opcode is Opcode.TEXT:
            try:
                message: str | bytes = data.decode()
            except UnicodeDecodeError:
                self._slow = True  # websockets closes with 1007, as it always did
                super().process_event(event)
                return
        else:
            message = data
        try:
            handler(message)
        except Exception as exc:
            self.failure = exc
            self.on_message = None
            self.transport.abort()


class WebsocketsConnection:
    """:class:`loadtest.runtime.transport.Connection` over a websockets client connection."""

    __slots__ = ("ws",)

    def __init__(self, ws: _Connection) -> None:
        self.ws = ws

    async def recv(self) -> str | bytes:
        try:
            return await self.ws.recv()
        except ConnectionClosed:
            raise Closed from None

    async def send(self, message: str | bytes) -> None:
        try:
            await self.ws.send(message)
        except ConnectionClosed:
            raise Closed from None

    def send_soon(self, message: str | bytes) -> None:
        if self.ws.protocol.close_sent is not None or self.ws.protocol.close_rcvd is not None:
            raise Closed
        future = asyncio.ensure_future(_send_quietly(self.ws, message))
        _SENDING.add(future)
        future.add_done_callback(_SENDING.discard)

    async def run(self, handler: Handler) -> None:
        ws = self.ws
        ws.on_message = handler  # whole messages are handled as their frames are parsed
        try:
            async for raw in ws:  # what the fast path leaves to websockets (fragmented, bad UTF-8)
                handler(raw)
        except ConnectionClosed:
            pass
        finally:
            ws.on_message = None
        if ws.failure is not None:
            raise ws.failure  # a bug in message handling: the session ends as "error"

    async def close(self, farewell: str | bytes | None = None) -> None:
        if farewell is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(farewell)
        await self.ws.close()

    def abort(self) -> None:
        self.ws.transport.abort()

    @property
    def close_code(self) -> int | None:
        received = self.ws.protocol.close_rcvd
        return received.code if received is not None else None


#: Sends under way (a task must stay referenced until it is done).
_SENDING: set[asyncio.Future[None]] = set()


async def _send_quietly(ws: ClientConnection, message: str | bytes) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send(message)


async def connect(spec: Spec, sock: Any, logger: Any) -> WebsocketsConnection:
    try:
        ws = await ws_connect(
            spec.url,
            sock=sock,
            ssl=spec.ssl,
            server_hostname=spec.server_hostname if spec.ssl else None,
            proxy=None,
            compression=None,
            open_timeout=spec.open_timeout,
            close_timeout=spec.close_timeout,
            max_size=MAX_MESSAGE,
            user_agent_header="game-loadtest",
            logger=logger,
            create_connection=_Connection,
        )
    except InvalidStatus as exc:
        raise HandshakeRefused(exc.response.status_code, exc.response.body) from exc
    except InvalidHandshake as exc:
        if isinstance(exc.__cause__, EOFError):
            # The peer closed before answering the upgrade: a lost connection, as picows says.
            raise ConnectionResetError("the connection closed during the WebSocket handshake") from exc
        raise HandshakeFailed(str(exc)) from exc
    return WebsocketsConnection(ws)
