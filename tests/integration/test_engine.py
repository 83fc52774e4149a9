"""The WebSocket engine's guarantees, held by every transport behind its seam (picows, websockets).

A real websockets server on loopback, in its own thread, plays each case by the URL path; the
engine runs as in a worker (its own thread and loop; the handles waited on from gevent's hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
import trustme
from websockets.asyncio.server import ServerConnection, serve

from loadtest.adapters.protocol import Opening, Protocol
from loadtest.collectors.aggregates import Record
from loadtest.collectors.ticks import TickCollector
from loadtest.runtime import transport as transport_module
from loadtest.runtime.engine import MAX_MESSAGE, SessionEnd, SessionSpec, WebSocketEngine

#: (transport, loop): each transport on its default loop, and picows on asyncio's own loop too.
TRANSPORTS = [
    pytest.param(
        (name, loop),
        id=f"{name}-{loop}",
        marks=() if name in transport_module.available() else pytest.mark.skip(f"{name} not installed"),
    )
    for name, loop in (("picows", "uvloop"), ("picows", "asyncio"), ("websockets", "asyncio"))
]
TIMEOUT = 15.0


def tick(n: int) -> str:
    return json.dumps({"type": "tick", "tick": n, "ts": time.time()})


class Server:
    """Plays one case per path; records what it saw of the client."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.seen: dict[str, Any] = {}
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def process_request(conn: ServerConnection, request: Any) -> Any:
            if request.path.startswith("/refuse"):
                return conn.respond(HTTPStatus.FORBIDDEN, json.dumps({"error": "ticket_spent"}))
            return None

        async with serve(
            self.handler, "127.0.0.1", 0, ssl=self.ssl_context, process_request=process_request, max_size=None
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?")[0].strip("/")
        self.seen[path] = {"remote": ws.remote_address[0], "user_agent": ws.request.headers.get("User-Agent")}
        with contextlib.suppress(Exception):  # the client closed first; the close code says how
            await self.play(ws, path)
        await ws.wait_closed()
        self.seen[path]["close_code"] = ws.close_code

    async def play(self, ws: ServerConnection, path: str) -> None:
        if path == "order":
            for n in range(1, 501):
                await ws.send(tick(n))
            await ws.close(4000, "done")
        elif path == "fragmented":
            await ws.send(tick(1))
            text = tick(2)
            await ws.send(iter([text[:5], text[5:11], text[11:]]))
            await ws.send(iter([b"\x00\x01", b"\x02"]))  # binary, fragmented: counted as unreadable
            await ws.send(tick(3))
            await ws.close(4000)
        elif path == "bad-utf8":
            await ws.send(tick(1))
            await ws.send(b"\xff\xfe not utf-8", text=True)
            await self._until_closed(ws, path)
        elif path == "big":
            await ws.send(tick(1))
            await ws.send("x" * (MAX_MESSAGE + 1))
            await self._until_closed(ws, path)
        elif path == "big-fragmented":
            await ws.send(tick(1))
            chunk = "y" * (MAX_MESSAGE // 4)
            await ws.send(iter([chunk] * 5))
            await self._until_closed(ws, path)
        elif path == "ping":
            await ws.send(tick(1))
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            self.seen[path]["pong"] = True
            await ws.send(tick(2))
            await ws.close(4000)
        elif path == "join":
            await ws.send("hello")
            await ws.send(tick(1))  # arrives while the client is still joining: must not be lost
            self.seen[path]["join"] = await asyncio.wait_for(ws.recv(), 5)
            await ws.send(tick(2))
            await ws.close(4000)
        else:  # "hold": tick until the client leaves
            reader = asyncio.create_task(self._until_closed(ws, path))
            n = 0
            while not reader.done():
                n += 1
                await ws.send(tick(n))
                await asyncio.sleep(0.02)

    async def _until_closed(self, ws: ServerConnection, path: str) -> None:
        async for message in ws:
            self.seen[path].setdefault("inputs", []).append(message)

    def closed(self, path: str) -> int | None:
        """The close code the server saw on ``path`` (waits, bounded, for the close to finish)."""
        for _ in range(200):
            if "close_code" in self.seen.get(path, {}):
                break
            time.sleep(0.025)
        return self.seen[path].get("close_code")


class Harness:
    """One engine and the records it ships, read once it has stopped."""

    def __init__(self, transport: str, loop: str) -> None:
        self.records: list[Record] = []
        ticks = TickCollector(estimate_offset=False)
        self.engine = WebSocketEngine(ticks, self.records.extend, "t", transport=transport, loop=loop)
        assert (self.engine.transport, self.engine.loop_kind) == (transport, loop)

    def spec(self, url: str, **kw: Any) -> SessionSpec:
        port = int(url.split(":")[2].split("/")[0])
        return SessionSpec(url=url, address="127.0.0.1", port=port, protocol=kw.pop("protocol", Protocol()), **kw)

    def session(self, spec: SessionSpec) -> SessionEnd:
        handle = self.engine.open(spec)
        outcome = handle.connected.get(timeout=TIMEOUT)
        assert outcome.ok, outcome
        return handle.ended.get(timeout=TIMEOUT)

    def counts(self) -> dict[str, float]:
        self.engine.stop()
        total: dict[str, float] = {}
        for r in self.records:
            if r.collector == "ticks":
                for k, v in r.counts.items():
                    total[k] = total.get(k, 0) + v
        return total


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


@pytest.fixture(params=TRANSPORTS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(*request.param)
    yield h
    h.engine.stop()


def url(server: Server, path: str, scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{server.port}/{path}"


def test_messages_arrive_in_order_and_the_server_close_code_is_kept(harness: Harness, server: Server) -> None:
    end = harness.session(harness.spec(url(server, "order")))
    assert (end.reason, end.code, end.messages) == ("server_4000", 4000, 500)
    counts = harness.counts()
    assert counts["ticks"] == 500
    assert counts.get("missed", 0) == 0 and counts.get("out_of_order", 0) == 0
    assert server.seen["order"]["user_agent"] == "game-loadtest"


def test_fragmented_messages_are_assembled_in_order(harness: Harness, server: Server) -> None:
    end = harness.session(harness.spec(url(server, "fragmented")))
    assert (end.reason, end.messages) == ("server_4000", 4)
    counts = harness.counts()
    assert counts["ticks"] == 3 and counts.get("out_of_order", 0) == 0 and counts.get("missed", 0) == 0
    assert counts["protocol_error:invalid_json"] == 1


def test_text_that_is_not_utf8_closes_with_1007(harness: Harness, server: Server) -> None:
    end = harness.session(harness.spec(url(server, "bad-utf8")))
    assert end.messages == 1
    assert server.closed("bad-utf8") == 1007
    # websockets fails the connection after its close frame; picows waits for the echo.
    assert end.reason in ("server_1007", "abnormal")


@pytest.mark.parametrize("path", ["big", "big-fragmented"])
def test_a_message_over_the_limit_closes_with_1009(harness: Harness, server: Server, path: str) -> None:
    end = harness.session(harness.spec(url(server, path)))
    assert end.messages == 1
    assert server.closed(path) == 1009
    assert end.reason in ("server_1009", "abnormal")


def test_pings_are_answered(harness: Harness, server: Server) -> None:
    end = harness.session(harness.spec(url(server, "ping")))
    assert server.seen["ping"].get("pong") is True
    assert (end.reason, end.messages) == ("server_4000", 2)


def test_a_leave_is_a_closing_handshake_and_inputs_are_sent(harness: Harness, server: Server) -> None:
    handle = harness.engine.open(harness.spec(url(server, "hold"), input_rate=50.0))
    assert handle.connected.get(timeout=TIMEOUT).ok
    assert handle.first_tick.wait(timeout=TIMEOUT)
    import gevent

    gevent.sleep(0.3)
    harness.engine.close(handle)
    end = handle.ended.get(timeout=TIMEOUT)
    assert end.reason == "client" and end.messages > 0
    assert server.closed("hold") == 1000
    assert len(server.seen["hold"].get("inputs", [])) >= 3
    assert json.loads(server.seen["hold"]["inputs"][0])["type"] == "input"


def test_an_abort_drops_the_connection_without_a_handshake(harness: Harness, server: Server) -> None:
    handle = harness.engine.open(harness.spec(url(server, "hold")))
    assert handle.connected.get(timeout=TIMEOUT).ok
    assert handle.first_tick.wait(timeout=TIMEOUT)
    harness.engine.close(handle, abort=True)
    assert handle.ended.get(timeout=TIMEOUT).reason == "client_abort"
    assert server.closed("hold") == 1006


def test_a_refused_handshake_keeps_its_status_and_body(harness: Harness, server: Server) -> None:
    handle = harness.engine.open(harness.spec(url(server, "refuse")))
    outcome = handle.connected.get(timeout=TIMEOUT)
    assert (outcome.ok, outcome.reason, outcome.status) == (False, "refused_403", 403)
    assert outcome.body == {"error": "ticket_spent"}
    assert handle.ended.get(timeout=TIMEOUT).reason == "not_connected"


def test_a_refused_connection_is_a_connection_error(harness: Harness) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        handle = harness.engine.open(harness.spec(f"ws://127.0.0.1:{port}/"))
        assert handle.connected.get(timeout=TIMEOUT).reason == "connection_error"


def test_a_peer_that_closes_during_the_upgrade_is_a_connection_error(harness: Harness) -> None:
    """A proxy or relay that drops the connection before answering the upgrade: counted, never a
    crash of the engine's connect (picows hands back no listener then)."""
    import socket
    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(TIMEOUT)

        def drop_after_the_request() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    conn.recv(4096)  # the upgrade request, then no answer: close

        thread = threading.Thread(target=drop_after_the_request, daemon=True)
        thread.start()
        handle = harness.engine.open(harness.spec(f"ws://127.0.0.1:{listener.getsockname()[1]}/"))
        assert handle.connected.get(timeout=TIMEOUT).reason == "connection_error"
        thread.join(TIMEOUT)


def test_the_source_address_is_used(harness: Harness, server: Server) -> None:
    end = harness.session(harness.spec(url(server, "order"), local_addr=("127.0.0.2", 0)))
    assert end.messages == 500
    assert server.seen["order"]["remote"] == "127.0.0.2"


class JoiningProtocol(Protocol):
    """A protocol with a join after the handshake (like Colyseus): recv, then send."""

    async def open(self, ws: Any) -> Opening:
        hello = await ws.recv()
        assert hello == "hello"
        await ws.send("joined")
        return Opening(True, resume="r1")


def test_a_join_reads_and_writes_and_loses_no_message(harness: Harness, server: Server) -> None:
    handle = harness.engine.open(harness.spec(url(server, "join"), protocol=JoiningProtocol()))
    outcome = handle.connected.get(timeout=TIMEOUT)
    assert outcome.ok and outcome.resume == "r1"
    end = handle.ended.get(timeout=TIMEOUT)
    assert server.seen["join"]["join"] == "joined"
    assert (end.reason, end.messages) == ("server_4000", 2)
    assert harness.counts()["ticks"] == 2


class BrokenProtocol(Protocol):
    def parse_message(self, raw: str | bytes) -> tuple[str, int, float, int, int]:
        raise RuntimeError("a bug in a protocol")


def test_a_bug_in_message_handling_ends_the_session_as_error(harness: Harness, server: Server) -> None:
    handle = harness.engine.open(harness.spec(url(server, "hold"), protocol=BrokenProtocol()))
    assert handle.connected.get(timeout=TIMEOUT).ok
    assert handle.ended.get(timeout=TIMEOUT).reason == "error"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_tls_with_a_private_ca_and_a_refused_unknown_certificate(harness: Harness, ca: trustme.CA) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    with Server(server_ctx) as server:
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        spec = harness.spec(url(server, "order", "wss"), ssl=trusted, server_hostname="localhost")
        end = harness.session(spec)
        assert (end.reason, end.messages) == ("server_4000", 500)
        untrusted = ssl.create_default_context()
        handle = harness.engine.open(
            harness.spec(url(server, "order", "wss"), ssl=untrusted, server_hostname="localhost")
        )
        assert handle.connected.get(timeout=TIMEOUT).reason == "tls_error"
