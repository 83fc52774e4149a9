"""HTTP plumbing shared by the matchmaker's handlers: typed errors, JSON bodies, client addresses.

Every error leaves as a JSON body with a 4xx status; an unexpected exception is logged and
answered with a JSON 500 that carries no traceback, and the server keeps serving everyone else.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

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
