"""The target as the harness sees it: where to send HTTP and WebSocket traffic, and from where.

Host names are resolved here, on the gevent side, once per target: the WebSocket engine's loop
must only ever see IP addresses (its resolver would hang under gevent).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from loadtest.adapters.protocol import Protocol
from loadtest.runtime.engine import SessionSpec


class SourceAddressAdapter(HTTPAdapter):
    """Sends this player's HTTP from one loopback source address, so per-IP limits see many clients."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        self._address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


class WsTarget:
    """The WebSocket side of the target: base URL, resolved address, TLS context (built once)."""

    _cache: dict[tuple[str, bool, str | None], WsTarget] = {}

    def __init__(self, host_url: str, insecure: bool, ca_bundle: str | None) -> None:
        parts = urlsplit(host_url)
        secure = parts.scheme == "https"
        self.base = f"{'wss' if secure else 'ws'}://{parts.netloc}"
        self.hostname = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if secure else 80)
        # Resolve here, on the gevent side: the engine's loop must only ever see addresses.
        self.address = socket.getaddrinfo(self.hostname, self.port, type=socket.SOCK_STREAM)[0][4][0]
        self.ssl: ssl.SSLContext | None = None
        if secure:
            if insecure:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                context = ssl.create_default_context(cafile=ca_bundle)
            self.ssl = context

    @classmethod
    def from_host(cls, host_url: str, settings: Any) -> WsTarget:
        key = (host_url, settings.insecure, settings.ca_bundle)
        target = cls._cache.get(key)
        if target is None:
            target = cls._cache[key] = cls(host_url, settings.insecure, settings.ca_bundle)
        return target

    def spec(
        self, url: str, protocol: Protocol, settings: Any, source: str | None, *, measure: bool = True
    ) -> SessionSpec:
        return SessionSpec(
            url=url,
            address=self.address,
            port=self.port,
            protocol=protocol,
            ssl=self.ssl,
            server_hostname=self.hostname,
            local_addr=(source, 0) if source else None,
            input_rate=settings.input_rate,
            open_timeout=settings.connect_timeout,
            close_timeout=settings.close_timeout,
            measure=measure,
        )
