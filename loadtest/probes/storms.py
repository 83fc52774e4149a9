"""Reconnect storms and stalls at scheduled times.

A client-side storm aborts sessions in every Locust process at once (the master tells its workers
with a custom message); a server-side storm or a stall is one call to the reference backend's
chaos endpoint, authorised with ``LOADTEST_ADMIN_TOKEN`` from the environment. On any other
backend a server-side storm has a trigger of the scenario's (:func:`fire_trigger`): an HTTP request
to the team's own admin endpoint, or a command that restarts a game server. What it dropped is
measured on the players' side (results/integrity.py), since no reply of such a trigger says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable

import requests

from loadtest.collectors.reconnects import ReconnectCollector
from loadtest.config.settings import ADMIN_TOKEN_ENV, ENV_REFERENCE, NETWORK_STORMS, PlayerSettings, Storm, StormTrigger
from loadtest.errors import StormError
from loadtest.probes.http import TIMEOUT, json_or_none, probe_session

log = logging.getLogger(__name__)
CHAOS_PATH = "/admin/api/chaos"
#: The target's base URL, in the environment of a storm's trigger command.
TARGET_ENV = "LOADTEST_TARGET"


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
    if storm.side == "server" and storm.trigger.kind != "chaos":
        fire_trigger(storm, host, settings, collector)
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


# -- triggers of a server-side storm on any backend -------------------------------------------


def fire_trigger(storm: Storm, host: str, settings: PlayerSettings, collector: ReconnectCollector) -> None:
    """Set off a server-side storm by its http or command trigger.

    The storm is recorded when its trigger starts, not when it ends: a ``kubectl rollout restart``
    drops sessions while it runs, and those drops are the storm's effect. A trigger that fails
    still raises :class:`StormError` with the status or exit code, and the run is not carried out.
    """
    trigger = storm.trigger
    collector.storm("server", None)
    if trigger.kind == "http":
        _http_trigger(trigger, host, settings)
    else:
        _command_trigger(trigger, host)


def expand_env(text: str) -> str:
    """``"Bearer ${NAME}"`` with the variable's value; a variable not set is a failed trigger
    (named, its value never shown)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise StormError(f"the trigger's header names ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return re.sub(ENV_REFERENCE, value, text)


def _http_trigger(trigger: StormTrigger, host: str, settings: PlayerSettings) -> None:
    url = str(trigger.url)
    if url.startswith("/"):
        url = host.rstrip("/") + url
    headers = {name: expand_env(value) for name, value in trigger.headers.items()}
    body = trigger.body
    kwargs: dict[str, object] = {"json": body} if isinstance(body, dict) else {"data": body}
    try:
        r = probe_session(settings, None).request(
            trigger.method, url, headers=headers, timeout=trigger.timeout, **kwargs
        )
    except requests.Timeout:
        raise StormError(f"{trigger.method} {url} had no reply within {trigger.timeout:g} s") from None
    except requests.RequestException as exc:
        raise StormError(f"{trigger.method} {url} failed: {type(exc).__name__}") from None
    if not 200 <= r.status_code < 300:
        raise StormError(f"{trigger.method} {url} answered {r.status_code}")
    log.info("loadtest: storm trigger %s %s answered %s", trigger.method, url, r.status_code)


def _command_trigger(trigger: StormTrigger, host: str) -> None:
    """Run the command in a session of its own, so a timeout ends it and every child it started
    (a shell's, kubectl's) by its process group, never by a name. It gets the environment of
    ``loadtest run`` (where its secrets are) and the target's base URL in ``LOADTEST_TARGET``."""
    argv = list(trigger.argv)
    shown = " ".join(argv)
    try:
        proc = subprocess.Popen(  # noqa: S603 - the scenario's own command, as an argv list, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, TARGET_ENV: host},
        )
    except OSError as exc:
        raise StormError(f"command {shown!r} could not start: {exc.strerror or exc}") from None
    try:
        output, _ = proc.communicate(timeout=trigger.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)
        raise StormError(f"command {shown!r} did not finish within {trigger.timeout:g} s") from None
    if proc.returncode != 0:
        raise StormError(f"command {shown!r} exited with {proc.returncode}")
    log.info("loadtest: storm trigger %r exited with 0 (%d bytes of output)", shown, len(output or b""))
