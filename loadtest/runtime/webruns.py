"""When a test started from the web UI is finished: the per-test run lifecycle.

With a web UI each test is a run of its own (its own folder, live summary, and report when it
stops). A stopped test's folder is finished :data:`FINISH_DELAY` seconds later, because workers
send their last records just before they report stopped; the next test waits for that report
(at most :data:`FINISH_TIMEOUT`); a quit before the report began finishes it at once, and a quit
while it is being written waits for it rather than lose it half-way. What finishing writes is
:meth:`loadtest.runtime.records.RecordFlow.finish_run`.
"""

from __future__ import annotations

import gevent

from loadtest.runtime.records import RecordFlow

FINISH_DELAY = 2.0
FINISH_TIMEOUT = 120.0


class WebRuns:
    def __init__(self, flow: RecordFlow) -> None:
        self.flow = flow
        self._finisher: gevent.Greenlet | None = None

    def before_test(self) -> None:
        """A new test starts: let the previous test's report be written first."""
        self._join_finisher()

    def test_stopped(self) -> None:
        if self.flow.runlog is not None and self._finisher is None:
            self._finisher = gevent.spawn_later(FINISH_DELAY, self.flow.finish_run, False)

    def quitting(self) -> None:
        if self._finisher is not None and not self.flow.finishing:
            self._finisher.kill(block=True)  # not begun: finish now rather than after the delay
            self._finisher = None
        self._join_finisher()  # begun: let it end (killing it mid-way would lose the report)
        if self.flow.runlog is not None:
            self.flow.ship(final=True)
            # A quit ends the test the way the Stop button does (Locust stops it first).
            self.flow.finish_run(False)

    def _join_finisher(self) -> None:
        if self._finisher is not None:
            self._finisher.join(timeout=FINISH_TIMEOUT)
            self._finisher = None
