"""A plain HTTP session for probes, from a source address of their own.

Probes stay out of Locust's request statistics (they are not player traffic), and by default send
from their own loopback address so players and probes never share a per-IP limit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from loadtest.config.settings import PlayerSettings
from loadtest.runtime.target import SourceAddressAdapter

TIMEOUT = 10.0


def probe_source(host: str, configured: str, default: str) -> str | None:
    if configured != "auto":
        return configured or None
    hostname = urlsplit(host).hostname or ""
    return default if hostname == "localhost" or hostname.startswith("127.") else None


def probe_session(settings: PlayerSettings, source: str | None) -> requests.Session:
    session = requests.Session()
    if source:
        session.mount("http://", SourceAddressAdapter(source))
        session.mount("https://", SourceAddressAdapter(source))
    session.verify = False if settings.insecure else (settings.ca_bundle or True)
    return session


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
