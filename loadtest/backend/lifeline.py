"""Children that die with the process that started them, even when it is killed with SIGKILL.

A ``loadtest run`` killed hard (an OOM kill, a CI runner's timeout) cannot stop its children, and
an embedded backend or a Locust left running holds ports, CPU and the next run's results. Linux's
``PR_SET_PDEATHSIG`` asks the kernel to signal the child when its parent goes: set in the child
between fork and exec (``preexec_fn``), it needs no cooperation from the parent at all.

The signal follows the *thread* that forked the child: start children from a thread that lives as
long as they should (the main thread, or the event loop's). Elsewhere than Linux there is nothing
to set and :func:`die_with_parent` returns None (``preexec_fn=None`` is Popen's default).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up now: the child between fork and exec must not import or load anything.
_PRCTL = _load_prctl()


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when this process dies."""
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()
    number = int(sig)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, number, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was in place
            os.kill(os.getpid(), number)

    return preexec


def die_with_parent_now(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies; True if it could.

    For processes this code did not start (Locust's ``--processes`` forks its workers itself):
    the request is made from inside, and a parent already gone means the signal comes at once.
    """
    prctl = _PRCTL
    if prctl is None:
        return False
    parent = os.getppid()
    if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), int(sig))
    return True
