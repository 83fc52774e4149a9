"""A plain HTTP session for probes, from a source address of their own.

Probes stay out of Locust's request statistics (they are not player traffic), and by default send
from their own loopback address so players and probes never share a per-IP limit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import gevent
import requests

from loadtest.adapters.protocol import ProtocolError, loads
from loadtest.config.settings import PlayerSettings
from loadtest.runtime.target import SourceAddressAdapter

TIMEOUT = 10.0


def probe_source(host: str, configured: str, default: str) -> str | None:
    if configured != "auto":
        return configured or None
    hostname = urlsplit(host).hostname or ""
    return default if hostname == "localhost" or hostname.startswith("127.") else None


class DeadlineSession(requests.Session):
    """A session whose every request completes within ``timeout`` seconds in total.

    requests' ``timeout`` bounds each read, so a reply dripping one byte a second holds a probe
    for as long as the target likes; a gevent timer bounds the whole request (probes run in
    greenlets) and raises requests' own ``Timeout``, which callers already handle as ``OSError``.
    """

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        deadline = kwargs.get("timeout") or TIMEOUT
        if isinstance(deadline, tuple):
            deadline = sum(t for t in deadline if t)
        with gevent.Timeout(deadline, requests.exceptions.Timeout(f"no complete reply within {deadline:g} s")):
            return super().request(method, url, *args, **kwargs)


def probe_session(settings: PlayerSettings, source: str | None) -> requests.Session:
    session = DeadlineSession()
    if source:
        session.mount("http://", SourceAddressAdapter(source))
        session.mount("https://", SourceAddressAdapter(source))
    session.verify = False if settings.insecure else (settings.ca_bundle or True)
    return session


def json_or_none(response: requests.Response) -> Any:
    """The reply's JSON, or None for anything that is not sane JSON (nesting past a sane depth too)."""
    try:
        return loads(response.content)
    except ProtocolError:
        return None
