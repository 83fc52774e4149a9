"""Locust wiring: ``--lt-*`` command-line options and one :class:`Harness` per process.

The options themselves (types, ranges, defaults, help) are :data:`loadtest.config.options.LT_OPTIONS`.

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

from loadtest.config import options
from loadtest.errors import UsageError
from loadtest.exitcodes import ExitCode
from loadtest.runtime.harness import Harness


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    group = parser.add_argument_group("game-loadtest", "simulated players and collectors (loadtest)")
    options.add_arguments(group)


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
