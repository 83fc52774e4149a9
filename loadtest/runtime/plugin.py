"""Locust wiring: ``--lt-*`` command-line options and one :class:`Harness` per process.

Importing this module registers the listeners (``loadtest/locustfile.py`` does it); options are
shown in the web UI and forwarded by Locust from the master to its workers. With a web UI, the
collectors get tabs of their own (:mod:`loadtest.runtime.webui`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from locust import events
from locust.env import Environment

from loadtest.config.settings import JOIN_MODES
from loadtest.errors import UsageError
from loadtest.exitcodes import ExitCode
from loadtest.runtime.backoff import KINDS
from loadtest.runtime.harness import Harness


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("game-loadtest", "simulated players and collectors (loadtest)")
    group.add_argument("--lt-session-length", type=float, help="seconds a player stays in a session (30)")
    group.add_argument("--lt-input-rate", type=float, help="inputs per second while playing (20)")
    group.add_argument("--lt-join-mode", choices=JOIN_MODES, help="quick, create or code (quick)")
    group.add_argument("--lt-room", help="room code for --lt-join-mode code")
    group.add_argument("--lt-sessions-per-user", type=int, help="sessions each player plays, then stops (0: no limit)")
    group.add_argument("--lt-think-time", type=float, help="seconds between leaving and playing again (1)")
    group.add_argument("--lt-reconnect", choices=KINDS, help="reconnect policy (exponential)")
    group.add_argument("--lt-source-addresses", help="loopback source addresses, e.g. 127.0.0.2-127.0.0.50")
    group.add_argument("--lt-ca-bundle", help="CA bundle for https:// and wss:// targets")
    group.add_argument("--lt-insecure", action="store_true", default=False, help="skip TLS verification (reported)")
    group.add_argument("--lt-reconnect-base", type=float, help="first backoff delay, s (1)")
    group.add_argument("--lt-reconnect-multiplier", type=float, help="backoff multiplier (2.0)")
    group.add_argument("--lt-reconnect-cap", type=float, help="longest backoff delay, s (30)")
    group.add_argument("--lt-reconnect-jitter", help="added jitter range MIN,MAX in s (0.1,0.5)")
    group.add_argument("--lt-reconnect-max-attempts", type=int, help="attempts before giving up (10)")
    group.add_argument("--lt-out", dest="lt_out_dir", help="run folder for collector data (reports/locust-<time>)")
    group.add_argument(
        "--lt-storm",
        action="append",
        metavar="at=S,side=client|server|stall[,fraction=F][,close_code=C][,seconds=S]",
        help="a reconnect storm or stall at S seconds into the run (repeatable); server side needs "
        "LOADTEST_ADMIN_TOKEN in the environment",
    )
    group.add_argument("--lt-replay-rate", type=float, help="replay/forgery probes per second (0: off)")
    group.add_argument("--lt-replay-kinds", action="append", help="limit replay probes to these kinds (repeatable)")
    group.add_argument(
        "--lt-rate-limit-probe",
        dest="lt_rate_limit_endpoint",
        choices=("/request_token", "/join"),
        help="probe this endpoint's rate limit with rising bursts",
    )
    group.add_argument("--lt-rate-limit-steps", help="offered rates of the rate-limit probe, req/s (2,5,10,20,40)")
    group.add_argument(
        "--lt-cors-origin",
        dest="lt_cors_origins",
        action="append",
        help="a browser origin that must be allowed (repeatable; turns the CORS probe on)",
    )
    group.add_argument(
        "--lt-cors-refused-origin",
        dest="lt_cors_refused_origins",
        action="append",
        help="an origin that must be refused (repeatable; default https://evil.example)",
    )


@events.init.add_listener
def _install(environment: Environment, **_: Any) -> None:
    harness = Harness.install(environment)
    if harness.role == "worker":
        return  # a worker's options arrive from the master with the first spawn message
    try:
        harness.settings  # noqa: B018 - validate now, not in every player's on_start
    except UsageError as exc:
        # A bad option is the user's to fix: one clear line and exit code 2, no traceback, and no
        # run idling until its time limit with every player failing.
        sys.stderr.write(f"loadtest: {exc}\n")
        sys.stderr.flush()
        os._exit(ExitCode.USAGE)
    if harness.web:
        from loadtest.runtime import webui

        webui.install(environment.web_ui, harness)
