"""``loadtest serve --check``: one real client walks the whole protocol against a running backend.

It proves a fresh install works end to end (token, join, ticket, WebSocket, ticks, input acks, a
refused replay) and reports the tick rate measured from the server's own tick numbers and
timestamps. The walk is ``loadtest check``'s (:func:`loadtest.cli.check.walk`): one client of
the flow, with the players' own protocol and WebSocket transport, not a second one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class CheckResult:
    ticks: int
    tick_rate_hz: float
    acked: int
    replay_refused: bool

    @property
    def ok(self) -> bool:
        return self.ticks > 0 and self.acked > 0 and self.replay_refused


async def run_check(base_url: str, seconds: float) -> CheckResult:
    from loadtest.cli.check import walk
    from loadtest.config.settings import PlayerSettings

    # The walk is blocking (requests, its own event loop for the WebSocket): off the backend's loop.
    result = await asyncio.to_thread(walk, base_url, PlayerSettings(), seconds=seconds, name="self-check")
    return CheckResult(result.ticks, result.tick_rate_hz, result.acked, bool(result.replay_refused))
