"""The whole reference backend in one object: matchmaker, admin, and game-server processes.

Start it in-process (``async with ReferenceBackend(config) as backend``) or as a subprocess with
:class:`loadtest.backend.process.BackendProcess`; ``loadtest serve`` is a thin shell around this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import ssl
from types import TracebackType

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from loadtest.backend.admin import Admin
from loadtest.backend.config import BackendConfig
from loadtest.backend.http import JsonErrorRunner
from loadtest.backend.matchmaker import Matchmaker
from loadtest.backend.pool import GameServerPool


class _ClientErrorsWithoutTraceback(logging.Filter):
    """A request aiohttp cannot even parse (an 8 KiB request line, a bogus encoding) is the
    client's fault: log one line, not a traceback, so bad input never looks like a server crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        cause = exc
        while cause is not None and not isinstance(cause, HttpProcessingError):
            cause = cause.__cause__ or cause.__context__
        if exc is not None and isinstance(cause, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {cause.__class__.__name__} ({cause.code}) - answered {cause.code}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_SERVER_LOG_FILTER = _ClientErrorsWithoutTraceback()


class ReferenceBackend:
    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.pool = GameServerPool(
            config.game_servers, config.tick_rate, config.effective_substeps, secrets.token_urlsafe(32)
        )
        self.pool.extra_args = config.gameserver_args
        self.matchmaker = Matchmaker(config, self.pool)
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        """Start game servers, then the matchmaker; return the base URL clients should use."""
        server_log = logging.getLogger("aiohttp.server")
        if _SERVER_LOG_FILTER not in server_log.filters:
            server_log.addFilter(_SERVER_LOG_FILTER)
        await self.pool.start()
        try:
            app = self.matchmaker.app()
            Admin(self.matchmaker, self.config.admin_token).install(app)
            self._runner = JsonErrorRunner(
                app,
                access_log=None,
                handle_signals=False,
                shutdown_timeout=2.0,
                keepalive_timeout=self.config.idle_timeout,
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=self._ssl_context())
            await site.start()
        except BaseException:
            await self.stop()
            raise
        host, port = self._runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self.url = f"{self.config.scheme}://{host}:{port}"
        self._sweeper = asyncio.create_task(self.matchmaker.sweep_forever())
        return self.url

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        return context

    async def stop(self) -> None:
        """Close every session, stop listening, and stop the game-server processes."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.matchmaker.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.pool.stop()

    async def __aenter__(self) -> ReferenceBackend:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(config: BackendConfig, *, check_seconds: float | None = None, show_admin_token: bool = True) -> int:
    """Run until SIGINT/SIGTERM (or, with ``check_seconds``, run the self-check and stop)."""
    from loadtest.backend.selfcheck import run_check

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    backend = ReferenceBackend(config)
    url = await backend.start()
    try:
        defects = ", ".join(sorted(config.defects)) or "none"
        ports = ", ".join(str(s.port) for s in backend.pool.servers)
        print(f"game-loadtest reference backend listening on {url}", flush=True)
        print(
            f"  game servers: {config.game_servers} (ports {ports}); tick rate {config.tick_rate:g} Hz; "
            f"room capacity {config.room_capacity}; defects: {defects}",
            flush=True,
        )
        # A generated token is printed: nobody else knows it. One the caller gave stays unprinted,
        # since this output often ends up in a log.
        shown = config.admin_token if show_admin_token else f"{config.admin_token[:3]}... (as given)"
        print(f"  admin token: {shown}  (GET {url}/admin with 'Authorization: Bearer <token>')", flush=True)
        if check_seconds is None:
            print("  Press Ctrl-C to stop.", flush=True)
            await stop.wait()
            print("stopping...", flush=True)
            return 0
        print(f"self-check: one player for {check_seconds:g} s ...", flush=True)
        result = await run_check(url, check_seconds)
        print(
            f"self-check: {result.ticks} ticks at {result.tick_rate_hz:.1f} Hz "
            f"(nominal {config.tick_rate:g}), "
            f"inputs acknowledged up to #{result.acked}, ticket replay "
            f"{'refused' if result.replay_refused else 'ACCEPTED'} -> {'OK' if result.ok else 'FAILED'}",
            flush=True,
        )
        return 0 if result.ok else 1
    finally:
        await backend.stop()
