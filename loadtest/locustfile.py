"""Plain Locust entry point: ``locust -f loadtest/locustfile.py --host http://127.0.0.1:8080``.

Runs the standard game player with every collector; the run's data lands in ``--lt-out``.
"""

import loadtest.plugin  # noqa: F401 - registers the --lt-* options and the harness
from loadtest.player import GamePlayer

__all__ = ["GamePlayer"]
