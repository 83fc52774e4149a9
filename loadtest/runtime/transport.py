"""The engine's transport seam: one WebSocket connection as the engine thread sees it.

Why a seam: the WebSocket layer is most of the engine's cost per message (docs/performance.md).
A compiled layer (``picows``, :mod:`loadtest.runtime.ws_picows`) receives about twice the
messages per CPU-second of a pure-Python one; ``websockets`` (:mod:`loadtest.runtime.ws_websockets`)
stays behind the same seam as the portable fallback. Both are held to the same guarantees by the
same tests (tests/integration/test_engine.py): messages in order, fragmented messages assembled,
text that is not UTF-8 closed with 1007, messages over :data:`MAX_MESSAGE` closed with 1009, pings
answered, closing handshakes both ways, TLS, source addresses, refused handshakes with their
status and body.

Everything here runs on the engine thread only.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gevent import monkey

#: Largest server message accepted; above this the session is closed with 1009.
MAX_MESSAGE = 1 << 20

Handler = Callable[[str | bytes], None]


class Closed(Exception):
    """The connection is closed (by either side): what ``recv`` and ``send`` raise."""


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP status other than 101."""

    def __init__(self, status: int, body: bytes | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class HandshakeFailed(Exception):
    """The upgrade failed for any other reason (a malformed or unexpected response)."""


class Connection(Protocol):
    """What the engine needs of an open WebSocket connection."""

    async def recv(self) -> str | bytes:
        """The next whole message (a protocol's join); raises :class:`Closed`."""

    async def send(self, message: str | bytes) -> None:
        """Send one message; raises :class:`Closed`."""

    def send_soon(self, message: str | bytes) -> None:
        """Send one message without waiting (player inputs); raises :class:`Closed`."""

    async def run(self, handler: Handler) -> None:
        """Hand every message to ``handler``, in order, as it is read, until the connection is
        closed. A message already received (during a join) goes first. Re-raises an exception
        ``handler`` raised, after aborting the connection."""

    async def close(self, farewell: str | bytes | None = None) -> None:
        """Send ``farewell`` if given, then the closing handshake, bounded by the close timeout."""

    def abort(self) -> None:
        """Drop the TCP connection at once (no closing handshake)."""

    @property
    def close_code(self) -> int | None:
        """The code of the close frame the server sent, if one arrived."""


class Spec(Protocol):
    url: str
    address: str
    port: int
    ssl: Any
    server_hostname: str | None
    local_addr: tuple[str, int] | None
    open_timeout: float
    close_timeout: float


Connect = Callable[[Spec, Any, Any], Awaitable[Connection]]

#: The socket class from before gevent patched it. Sockets the engine thread reads are real ones:
#: a patched socket routes every recv and send through gevent's Python wrapper, which was 8% of the
#: engine thread's time at 500 sessions (bench/ws_engine.py, docs/performance.md).
RealSocket = monkey.get_original("socket", "socket")


async def open_tcp(spec: Spec) -> Any:
    """A connected, non-blocking TCP socket to the resolved address, from ``local_addr`` if given."""
    family = socket.AF_INET6 if ":" in spec.address else socket.AF_INET
    sock = RealSocket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if spec.local_addr is not None:
            sock.bind(spec.local_addr)
        await asyncio.get_running_loop().sock_connect(sock, (spec.address, spec.port))
    except BaseException:
        sock.close()
        raise
    return sock


#: Transport names, best first.
TRANSPORTS = ("picows", "websockets")
#: Environment variable that picks the transport (``picows`` or ``websockets``).
ENV = "LOADTEST_WS_TRANSPORT"


def available() -> list[str]:
    """The transports importable here, best first."""
    names = []
    for name in TRANSPORTS:
        try:
            connector(name)
        except ImportError:
            continue
        names.append(name)
    return names


def choose(name: str | None = None) -> str:
    """``name``, else ``$LOADTEST_WS_TRANSPORT``, else the best available transport."""
    name = name or os.environ.get(ENV) or None
    if name is None:
        return available()[0]
    if name not in TRANSPORTS:
        raise ValueError(f"unknown WebSocket transport {name!r} (allowed: {', '.join(TRANSPORTS)})")
    return name


def connector(name: str) -> Connect:
    """The ``connect(spec, sock, logger)`` coroutine function of transport ``name``."""
    if name == "picows":
        from loadtest.runtime.ws_picows import connect
    elif name == "websockets":
        from loadtest.runtime.ws_websockets import connect
    else:
        raise ValueError(f"unknown WebSocket transport {name!r} (allowed: {', '.join(TRANSPORTS)})")
    return connect
