"""Reconnect storms and stalls at scheduled times.

A client-side storm aborts sessions in every Locust process at once (the master tells its workers
with a custom message); a server-side storm or a stall is one call to the reference backend's
chaos endpoint, authorised with ``LOADTEST_ADMIN_TOKEN`` from the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import requests

from loadtest.collectors.reconnects import ReconnectCollector
from loadtest.config.settings import ADMIN_TOKEN_ENV, NETWORK_STORMS, PlayerSettings, Storm
from loadtest.errors import StormError
from loadtest.probes.http import TIMEOUT, json_or_none, probe_session

log = logging.getLogger(__name__)
CHAOS_PATH = "/admin/api/chaos"


def fire(
    storm: Storm,
    host: str,
    settings: PlayerSettings,
    collector: ReconnectCollector,
    drop_clients: Callable[[float], int | None],
) -> None:
    if storm.side == "client":
        collector.storm("client", drop_clients(storm.fraction))
        return
    if storm.side in NETWORK_STORMS:
        # Carried out by the players' relay (loadtest.runtime.relay), in every process at once.
        from loadtest.runtime import network

        collector.storm(storm.side, network.storm(storm))
        return
    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        raise StormError(f"a {storm.side}-side storm needs the target's admin token in {ADMIN_TOKEN_ENV}")
    body: dict[str, object]
    if storm.side == "server":
        body = {"action": "disconnect", "fraction": storm.fraction, "close_code": storm.close_code}
    else:
        body = {"action": "stall", "seconds": storm.seconds}
    try:
        r = probe_session(settings, None).post(
            host.rstrip("/") + CHAOS_PATH, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
    except requests.RequestException as exc:
        raise StormError(f"chaos endpoint unreachable: {exc}") from exc
    if r.status_code != 200:
        raise StormError(f"chaos endpoint answered {r.status_code}")
    reply = json_or_none(r) or {}
    collector.storm(storm.side, reply.get("dropped") if storm.side == "server" else None)
