"""HTTP plumbing shared by the matchmaker's handlers: typed errors, JSON bodies, client addresses.

Every error leaves as a JSON body with a 4xx status; an unexpected exception is logged and
answered with a JSON 500 that carries no traceback, and the server keeps serving everyone else.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

log = logging.getLogger("loadtest.backend")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error the client caused, answered as ``{"error": message, **extra}``."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response({"error": self.message, **self.extra}, status=self.status, headers=self.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
        return web.json_response({"error": exc.reason.lower()}, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.json_response({"error": "internal error"}, status=500)


async def json_object(request: web.Request, *, allow_empty: bool) -> dict[str, object]:
    """The request body as a JSON object, or an :class:`ApiError` saying what is wrong with it."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"body larger than {request.client_max_size} bytes") from None
    except RequestPayloadError:
        # A body the transport cannot decode (a bogus Content-Encoding) is the client's fault.
        # aiohttp drops the connection after such a body, so tell the client not to reuse it.
        raise ApiError(400, "body could not be decoded", headers={"Connection": "close"}) from None
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "body must be a JSON object")
    if request.content_type != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: "[[[[..." nested a few thousand deep fits well inside the body cap.
        raise ApiError(400, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body


class ClientAddress:
    """Finds the client's IP, believing ``X-Forwarded-For`` only when a trusted proxy sent it."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def of(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        # Walk from the nearest hop outwards; the first address not ours is the client.
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop if _is_ip(hop) else peer
        return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a secret a client sent with ours.

    ``hmac.compare_digest`` refuses a ``str`` that is not ASCII with a ``TypeError`` (a 500 for
    ``Authorization: Bearer été``); bytes compare whatever was sent.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def is_text(value: str) -> bool:
    """Whether ``value`` is text that can leave as UTF-8 (a lone surrogate such as ``"\\ud800"``,
    valid in JSON, is not, and fails every page, header and URL that carries it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Seconds a connection may sit without sending a complete request (or between requests).
IDLE_TIMEOUT = 30.0


class _JsonErrorHandler(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse with a JSON body.

    Those errors (a bad request line, an oversized header) never reach the application's
    middlewares; aiohttp answers them itself in plain text. The protocol promises JSON errors.
    """

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs, and refuses a sent reply
        try:
            phrase = HTTPStatus(plain.status).phrase.lower()
        except ValueError:
            phrase = "error"
        response = web.json_response({"error": phrase}, status=plain.status)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    __slots__ = ()  # the same layout as aiohttp's Server, so an instance can take this class

    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections answer unparseable requests in JSON
    and close when idle for ``keepalive_timeout`` seconds (:data:`IDLE_TIMEOUT` by default;
    aiohttp's own is an hour), a connection that never sends a request included."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", IDLE_TIMEOUT)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same server; only its handler class differs
        return server
