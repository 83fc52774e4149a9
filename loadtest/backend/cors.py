"""CORS for the two endpoints a browser build of a game calls before it can open a socket.

``aiohttp-cors`` answers preflights with 200 and refuses unknown origins with a 403 page; the
protocol pins 204 for an allowed preflight and *no allow header* (not an error page) for a refused
origin, because that is what a probe has to tell apart from a misconfiguration. So the small
policy lives here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

ALLOWED_HEADERS = "Authorization, Content-Type"
CORS_PATHS = frozenset({"/request_token", "/join"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CorsPolicy:
    """Which origins may call the token and join endpoints from a browser."""

    def __init__(self, origins: Iterable[str]) -> None:
        origins = tuple(origins)
        self.wildcard = "*" in origins
        self.origins = frozenset(o.rstrip("/") for o in origins if o != "*")

    def allow_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None to refuse it."""
        if not origin:
            return None
        if origin.rstrip("/") in self.origins:
            return origin
        if self.wildcard:
            return "*"
        return None

    def headers_for(self, origin: str | None) -> dict[str, str]:
        allowed = self.allow_origin(origin)
        if allowed is None:
            return {"Vary": "Origin"}
        headers = {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}
        if allowed != "*":
            # Credentials are only ever granted to a named origin, never together with "*".
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path not in CORS_PATHS:
                return await handler(request)
            origin = request.headers.get("Origin")
            if request.method == "OPTIONS":
                headers = self.headers_for(origin)
                if "Access-Control-Allow-Origin" in headers:
                    headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
                    headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
                    headers["Access-Control-Max-Age"] = "600"
                return web.Response(status=204, headers=headers)
            response = await handler(request)
            response.headers.update(self.headers_for(origin))
            return response

        return cors_middleware
