"""Plain Locust entry point: ``locust -f loadtest/locustfile.py --host http://127.0.0.1:8080``.

Runs the standard game player with every collector; the run's data lands in ``--lt-out``. When the
settings file (``LOADTEST_SETTINGS``, written by ``loadtest run``) has load stages, a load shape
drives the users instead of ``-u``/``-r``.
"""

from locust import LoadTestShape

import loadtest.runtime.plugin  # noqa: F401 - registers the --lt-* options and the harness
from loadtest.config.settings import PlayerSettings
from loadtest.runtime.player import GamePlayer

__all__ = ["GamePlayer"]

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
