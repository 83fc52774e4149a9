"""The compiled transport: ``picows`` (Cython frame parser, asyncio) behind the engine's seam.

Why: at 500 sessions of 60 Hz ticks websockets' Python frame parsing and dispatch were most of the
engine thread (docs/performance.md); picows parses frames in C and calls back once per frame.
Framing, masking, ping replies and the frame-size limit are picows'; picows hands over frames, not
messages, so this module adds what websockets did above its frames: messages assembled from
fragments (1002 for a broken sequence), text checked as UTF-8 (1007), messages above
:data:`~loadtest.runtime.transport.MAX_MESSAGE` refused (1009) and the close frame answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from picows import WSCloseCode, WSFrame, WSHandshakeError, WSListener, WSMsgType, WSTransport, ws_connect

from loadtest.runtime.transport import MAX_MESSAGE, Closed, Handler, HandshakeFailed, HandshakeRefused, Spec

_TEXT, _BINARY, _CONT, _CLOSE = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.CLOSE
#: The read buffer a connection starts with; picows grows it when a frame does not fit. Its
#: default (16 KiB) was half of an idle session's memory (bench/idle_capacity.py); picows 2.3
#: never starts below 2 KiB (``max(read_buffer_init_size, 2048)``), so that is what this asks for.
READ_BUFFER = 2048


class _Listener(WSListener):
    """Turns frames into whole messages: to ``handler`` once set, else into a queue for ``recv``."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.failure: BaseException | None = None
        self.transport: WSTransport | None = None
        self.closed = False
        self.close_timeout = 2.0
        self._queue: deque[str | bytes] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._parts: list[bytes] | None = None  # a fragmented message being assembled
        self._text = False
        self._size = 0
        self._failed = False  # we refused a message: what follows is not read

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if (self._failed or frame.payload_size > MAX_MESSAGE) and kind is not _CLOSE:
            # After a refusal (ours, or picows' own 1009, after which it still hands the frame
            # over) nothing more is a message; the close frame still ends the connection.
            return
        if kind is _TEXT and frame.fin and self._parts is None:
            try:
                message: str | bytes = frame.get_payload_as_utf8_text()
            except UnicodeDecodeError:
                self._refuse(transport, WSCloseCode.INVALID_TEXT)
                return
        elif kind is _BINARY and frame.fin and self._parts is None:
            message = frame.get_payload_as_bytes()
        elif kind is _CLOSE:
            if not transport.is_close_frame_sent:
                code = frame.get_close_code()
                transport.send_close(WSCloseCode.OK if code is WSCloseCode.NO_INFO else code)
            transport.disconnect()
            return
        elif kind is _TEXT or kind is _BINARY or kind is _CONT:
            assembled = self._assemble(transport, frame)
            if assembled is None:
                return
            message = assembled
        else:
            return  # PING (answered by picows) and PONG
        handler = self.handler
        if handler is None:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(message)
            self._wake()
            return
        try:
            handler(message)
        except Exception as exc:
            self.failure = exc
            self.handler = None
            transport.disconnect(graceful=False)

    def _assemble(self, transport: WSTransport, frame: WSFrame) -> str | bytes | None:
        kind = frame.msg_type
        if (kind is _CONT) != (self._parts is not None):
            self._refuse(transport, WSCloseCode.PROTOCOL_ERROR)  # a continuation out of sequence
            return None
        if self._parts is None:
            self._parts, self._text, self._size = [], kind is _TEXT, 0
        self._size += frame.payload_size
        if self._size > MAX_MESSAGE:
            self._refuse(transport, WSCloseCode.MESSAGE_TOO_BIG)
            return None
        self._parts.append(frame.get_payload_as_bytes())
        if not frame.fin:
            return None
        data, self._parts = b"".join(self._parts), None
        if not self._text:
            return data
        try:
            return data.decode()
        except UnicodeDecodeError:
            self._refuse(transport, WSCloseCode.INVALID_TEXT)
            return None

    def _refuse(self, transport: WSTransport, code: WSCloseCode) -> None:
        """Close with ``code`` as websockets does: stop reading messages, wait (bounded) for the echo."""
        self._parts = None
        self._failed = True
        if not transport.is_close_frame_sent:
            transport.send_close(code)
        asyncio.get_running_loop().call_later(self.close_timeout, transport.disconnect, False)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_message(self) -> str | bytes:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self.closed:
                raise Closed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take(self, handler: Handler) -> None:
        """Hand messages to ``handler`` from now on, those queued during the join first."""
        queue, self._queue = self._queue, None
        while queue:
            handler(queue.popleft())
        self.handler = handler


class PicowsConnection:
    """:class:`loadtest.runtime.transport.Connection` over a picows transport."""

    __slots__ = ("close_timeout", "listener", "transport")

    def __init__(self, transport: WSTransport, listener: _Listener, close_timeout: float) -> None:
        self.transport = transport
        self.listener = listener
        self.close_timeout = close_timeout
        listener.close_timeout = close_timeout

    async def recv(self) -> str | bytes:
        return await self.listener.next_message()

    async def send(self, message: str | bytes) -> None:
        self.send_soon(message)

    def send_soon(self, message: str | bytes) -> None:
        transport = self.transport
        if self.listener.closed or transport.is_close_frame_sent:
            raise Closed
        if type(message) is str:
            transport.send(_TEXT, message.encode())
        else:
            transport.send(_BINARY, message)

    async def run(self, handler: Handler) -> None:
        listener = self.listener
        try:
            listener.take(handler)
        except Exception as exc:
            listener.failure = exc
            self.transport.disconnect(graceful=False)
        with contextlib.suppress(Exception):  # picows re-raises its own protocol errors here
            await self.transport.wait_disconnected()
        listener.handler = None
        if listener.failure is not None:
            raise listener.failure  # a bug in message handling: the session ends as "error"

    async def close(self, farewell: str | bytes | None = None) -> None:
        transport = self.transport
        if self.listener.closed:
            return
        if farewell is not None and not transport.is_close_frame_sent:
            await self.send(farewell)
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode.OK)
        try:
            async with asyncio.timeout(self.close_timeout):
                with contextlib.suppress(Exception):
                    await transport.wait_disconnected()
        except TimeoutError:
            transport.disconnect(graceful=False)

    def abort(self) -> None:
        self.transport.disconnect(graceful=False)

    @property
    def close_code(self) -> int | None:
        handshake = self.transport.close_handshake
        if handshake is None or handshake.recv is None:
            return None
        return int(handshake.recv.code.value if isinstance(handshake.recv.code, WSCloseCode) else handshake.recv.code)


async def connect(spec: Spec, sock: Any, logger: Any) -> PicowsConnection:
    async def given_socket(_url: Any) -> Any:
        # A coroutine, not the socket: picows type-checks a returned socket against
        # ``socket.socket``, which gevent has patched; the engine's socket is the original class.
        return sock

    kwargs: dict[str, Any] = {}
    if spec.ssl is not None and spec.server_hostname:
        kwargs["server_hostname"] = spec.server_hostname
    try:
        transport, listener = await ws_connect(
            _Listener,
            spec.url,
            ssl_context=spec.ssl,
            socket_factory=given_socket,
            websocket_handshake_timeout=spec.open_timeout,
            logger_name=logger,
            enable_auto_pong=True,
            max_frame_size=MAX_MESSAGE,
            extra_headers={"User-Agent": "game-loadtest"},
            max_redirects=0,
            read_buffer_init_size=READ_BUFFER,
            use_aiofastnet=False,
            **kwargs,
        )
    except WSHandshakeError as exc:
        response = exc.response
        if response is None:
            raise HandshakeFailed(str(exc)) from exc
        status = int(response.status)
        if status == 101:
            raise HandshakeFailed(str(exc)) from exc
        raise HandshakeRefused(status, response.body or exc.raw_body or None) from exc
    if listener is None:
        # picows hands back no listener when the peer closed before the upgrade was answered
        # (a proxy or relay dropping the connection): a lost connection, not a broken handshake.
        raise ConnectionResetError("the connection closed during the WebSocket handshake")
    assert isinstance(listener, _Listener)
    return PicowsConnection(transport, listener, spec.close_timeout)
