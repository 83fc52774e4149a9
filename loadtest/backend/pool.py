"""The matchmaker's game-server processes: starting, talking to, and stopping them.

Each game server is a real OS process on its own loopback port (``python -m
loadtest.backend.gameserver``). It is started in its own session so a terminal's Ctrl-C reaches only
the matchmaker, which then stops the game servers in order; and it exits by itself when its stdin
closes, and the kernel kills it when the matchmaker dies (``PR_SET_PDEATHSIG``), so even a
matchmaker killed with SIGKILL leaves no orphan behind. Game servers never see the matchmaker's
signing key or admin token: they get the internal key only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

import aiohttp

from loadtest.backend.internal import INTERNAL_KEY_ENV, INTERNAL_KEY_HEADER
from loadtest.backend.lifeline import die_with_parent
from loadtest.errors import NotCarriedOutError

log = logging.getLogger(__name__)

#: The matchmaker's own secrets (see :mod:`loadtest.backend.process`), kept from game servers.
_MATCHMAKER_SECRETS = frozenset({"LOADTEST_ADMIN_TOKEN", "LOADTEST_JWT_SECRET"})
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class GameServerError(NotCarriedOutError):
    """Raised when a game-server process of the reference backend cannot be started or reached."""


@dataclass
class GameServerHandle:
    index: int
    process: asyncio.subprocess.Process
    port: int = 0
    rooms: set[str] = field(default_factory=set)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class GameServerPool:
    def __init__(self, count: int, tick_rate: float, substeps: int, key: str) -> None:
        self.count = count
        self._tick_rate = tick_rate
        self._substeps = substeps
        self._key = key
        #: Flags for every game-server process (the defects it carries out itself).
        self.extra_args: tuple[str, ...] = ()
        self.servers: list[GameServerHandle] = []
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _MATCHMAKER_SECRETS}
        env[INTERNAL_KEY_ENV] = self._key
        try:
            for index in range(self.count):
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "loadtest.backend.gameserver",
                    "--index",
                    str(index),
                    "--tick-rate",
                    str(self._tick_rate),
                    "--substeps",
                    str(self._substeps),
                    *self.extra_args,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                    start_new_session=True,
                    # Killed with the matchmaker even if its stdin lingers (a SIGKILLed parent whose
                    # pipe another process inherited).
                    preexec_fn=die_with_parent(signal.SIGKILL),
                )
                self.servers.append(GameServerHandle(index, process))
            for server in self.servers:
                server.port = await self._await_ready(server)
        except BaseException:
            await self.stop()
            raise
        self._http = aiohttp.ClientSession(
            headers={INTERNAL_KEY_HEADER: self._key},
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, connect=5),
        )

    async def _await_ready(self, server: GameServerHandle) -> int:
        assert server.process.stdout is not None
        try:
            line = await asyncio.wait_for(server.process.stdout.readline(), STARTUP_TIMEOUT)
        except TimeoutError:
            raise GameServerError(
                f"game server {server.index} did not report ready within {STARTUP_TIMEOUT:.0f} s"
            ) from None
        text = line.decode(errors="replace").strip()
        if not text.startswith("READY "):
            raise GameServerError(
                f"game server {server.index} failed to start (exit code {server.process.returncode}): "
                f"{text or 'no output'}"
            )
        return int(text.split()[1])

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        for server in self.servers:
            if server.alive and server.process.stdin is not None:
                server.process.stdin.close()
        for server in self.servers:
            await _stop_process(server.process)
        self.servers = []

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise GameServerError("the game-server pool is not running")
        return self._http

    def pick(self) -> GameServerHandle:
        """The live game server with the fewest rooms: spread rooms as a fleet allocator would."""
        alive = [s for s in self.servers if s.alive]
        if not alive:
            raise GameServerError("no game server is running")
        return min(alive, key=lambda s: (len(s.rooms), s.index))

    async def open_session(
        self, server: GameServerHandle, room: str, player_id: str, name: str
    ) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(
            server.url("/internal/session"),
            params={"room": room, "player": player_id, "name": name},
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
        )

    async def _each(self, method: str, path: str, **kwargs: object) -> list[object]:
        async def one(server: GameServerHandle) -> object:
            try:
                async with self.http.request(
                    method, server.url(path), timeout=aiohttp.ClientTimeout(total=2), **kwargs
                ) as response:
                    response.raise_for_status()
                    if response.content_type == "application/json":
                        return await response.json()
                    return await response.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("game server %d did not answer %s: %s", server.index, path, exc)
                return None

        return list(await asyncio.gather(*(one(s) for s in self.servers if s.alive)))

    async def stall(self, seconds: float) -> int:
        answers = await self._each("POST", "/internal/stall", json={"seconds": seconds})
        return sum(1 for a in answers if a is not None)

    async def metrics_texts(self) -> list[str]:
        return [a for a in await self._each("GET", "/metrics") if isinstance(a, str)]

    async def stats(self) -> list[dict]:
        return [a for a in await self._each("GET", "/internal/stats") if isinstance(a, dict)]


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        return
    except TimeoutError:
        pass
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
