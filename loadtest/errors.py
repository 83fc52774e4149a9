"""The errors game-loadtest raises on purpose, under one base so a caller can catch them all.

Two families decide what the command line does with an error that reaches it: a
:class:`UsageError` is the user's to fix (one line naming what is wrong, exit code 2) and a
:class:`NotCarriedOutError` means the work could not be done (exit code 3). The concrete errors
live beside the code that raises them (``ScenarioError`` in :mod:`loadtest.config.scenario`, and
so on) unless their module imports gevent, whose errors live here so that catching them does not
patch the process; :mod:`loadtest` exports them all. This module imports nothing of the package
but the exit codes, so the reference backend and the scenario loader can use it cheaply.
"""

from __future__ import annotations

from typing import ClassVar

from loadtest.exitcodes import ExitCode


class LoadtestError(Exception):
    """Base of every error game-loadtest raises on purpose.

    An error outside this tree is a bug. ``exit_code`` is what the command line exits with when
    the error ends a command.
    """

    exit_code: ClassVar[ExitCode] = ExitCode.NOT_CARRIED_OUT


class UsageError(LoadtestError, ValueError):
    """Raised for input the user must fix before anything runs: a command-line value, a scenario
    file, a setting, a gate expression, an adapter kind. The message names the file or option,
    the key, and what is allowed. It is a ``ValueError`` too, as code that validates values
    expects."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class NotCarriedOutError(LoadtestError, RuntimeError):
    """Raised when a planned piece of work could not be done (a backend that would not start, a
    storm the target refused): the run must not be judged as if it had happened."""

    exit_code: ClassVar[ExitCode] = ExitCode.NOT_CARRIED_OUT


class ProbeSkipped(LoadtestError):
    """Raised inside a probe step when the probe cannot run this time (no token, rate limited,
    the backend does not support it); ``why`` is a short, countable reason.

    :meth:`loadtest.probes.replay.ReplayProbe.probe` catches it and counts the probe as skipped
    with that reason instead of giving a verdict: a probe that did not run proves nothing.
    """

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class StormError(NotCarriedOutError):
    """Raised by :func:`loadtest.probes.storms.fire` when a planned storm could not be carried out
    (no admin token for a server-side storm, the chaos endpoint refused or unreachable); the
    harness logs it and counts the storm as failed."""
