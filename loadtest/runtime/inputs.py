"""Player inputs for every session of the engine from one clock per input rate.

Why not a task per session that sleeps between inputs: at 500 sessions and 20 Hz that was 10,000
``asyncio.sleep`` wake-ups a second (a timer handle, a future and a task step each), about a tenth
of the engine thread (bench/ws_engine.py, docs/performance.md). One clock per rate wakes
:data:`SLOTS` times per input period and sends for the sessions of that slot; a session lands in
the emptiest slot, so inputs stay spread over the period. A late loop falls behind rather than
bursts, as before. Engine thread only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from loadtest.runtime.transport import Closed

#: Wake-ups per input period (at 20 Hz: every 5 ms).
SLOTS = 10


class _Sender:
    """One session's input stream: the random walk of its stick and its sequence number."""

    __slots__ = ("protocol", "seq", "slot", "state", "ws", "x", "y")

    def __init__(self, ws: Any, state: Any, protocol: Any, slot: int) -> None:
        self.ws, self.state, self.protocol, self.slot = ws, state, protocol, slot
        self.seq = 0
        self.x = self.y = 0.0


class InputClock:
    """Sends one input per period for every session registered at this rate."""

    def __init__(self, rate: float, on_failure: Callable[[BaseException], None]) -> None:
        self.period = 1.0 / rate
        self._slots: list[dict[int, _Sender]] = [{} for _ in range(SLOTS)]
        self._on_failure = on_failure
        self._rng = random.Random()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return sum(len(slot) for slot in self._slots)

    def add(self, sid: int, ws: Any, state: Any, protocol: Any) -> None:
        slot = min(range(SLOTS), key=lambda i: len(self._slots[i]))
        self._slots[slot][sid] = _Sender(ws, state, protocol, slot)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def remove(self, sid: int) -> None:
        for slot in self._slots:
            if slot.pop(sid, None) is not None:
                return

    def stop(self) -> asyncio.Task[None] | None:
        """Cancel the clock; returns its task, for the caller to let finish."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.period / SLOTS
        deadline = loop.time()
        slot = 0
        while True:
            now = loop.time()
            # Fall behind rather than burst: a late loop must not flood the server with inputs.
            deadline = max(deadline + step, now)
            await asyncio.sleep(deadline - now)
            senders = self._slots[slot]
            if senders:
                self._send(senders)
            slot = (slot + 1) % SLOTS

    def _send(self, senders: dict[int, _Sender]) -> None:
        # random() and comparisons rather than uniform() and max(min()): the same walk, in C calls
        # only (a third of a microsecond less per input; 10,000 inputs a second at 500 sessions).
        rand = self._rng.random
        clock = time.time
        gone = []
        for sid, s in senders.items():
            seq = s.seq = s.seq + 1
            x = s.x + rand() * 0.6 - 0.3
            s.x = x = 1.0 if x > 1.0 else (-1.0 if x < -1.0 else x)
            y = s.y + rand() * 0.6 - 0.3
            s.y = y = 1.0 if y > 1.0 else (-1.0 if y < -1.0 else y)
            try:
                message = s.protocol.input_message(seq, x, y)
                s.state.sent_input(seq, clock())
                s.ws.send_soon(message)
            except Closed:
                gone.append(sid)
            except Exception as exc:  # a Protocol subclass's bug: say so, once per session, and count it
                gone.append(sid)
                self._on_failure(exc)
        for sid in gone:
            del senders[sid]
