"""The exit codes of ``loadtest`` and of its Locust processes, so CI can tell the cases apart.

A run that could not do what it planned must never look like a pass: that is what
:attr:`ExitCode.NOT_CARRIED_OUT` is for, distinct from a gate that failed.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    #: Every gate passed (or, for commands without gates, the command did its work).
    PASSED = 0
    OK = 0
    #: The run was carried out and a gate failed.
    FAILED = 1
    #: The command line, a scenario file or a setting is wrong; nothing was run.
    USAGE = 2
    #: The work could not be carried out (a port in use, a process that would not start, an
    #: unreachable target) or was interrupted.
    NOT_CARRIED_OUT = 3
