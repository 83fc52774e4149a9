"""Plain Locust entry point: ``locust -f loadtest/locustfile.py --host http://127.0.0.1:8080``.

Runs the standard game player with every collector; the run's data lands in ``--lt-out``. When the
settings file (``LOADTEST_SETTINGS``, written by ``loadtest run``) has load stages, a load shape
drives the users instead of ``-u``/``-r``.
"""

import os
import signal

from locust import LoadTestShape

import loadtest.runtime.plugin  # noqa: F401 - registers the --lt-* options and the harness
from loadtest.backend.lifeline import die_with_parent_now
from loadtest.config.settings import PlayerSettings
from loadtest.runtime.player import GamePlayer

__all__ = ["GamePlayer"]


def _die_with_master() -> None:
    """Workers that ``--processes`` forks die with their master, even a master killed with
    SIGKILL (``loadtest run`` has the kernel end the master; nothing would end its workers).

    Asked for in the forked child at once, before Locust connects it to its master (which can
    block for a minute when the master is already gone), and as SIGKILL: a worker whose master is
    gone has no one to report to, and its graceful stop would wait on that master."""
    die_with_parent_now(signal.SIGKILL)


# This module is imported before Locust forks its workers: every fork of this process runs it.
os.register_at_fork(after_in_child=_die_with_master)


_STAGES = PlayerSettings.load().stages

if _STAGES:

    class ScenarioShape(LoadTestShape):
        """The scenario's stages, one after the other; the run ends after the last."""

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            end = 0.0
            for duration, users, spawn_rate in _STAGES:
                end += duration
                if elapsed < end:
                    return users, spawn_rate
            return None

    __all__ += ["ScenarioShape"]
