"""Single-use, short-lived connect tickets.

A ticket is what ``/join`` trades a JWT for and ``/connect`` accepts once. The correct store
consumes a ticket atomically (one ``dict.pop`` with no await in between), so of several sockets
racing with one ticket exactly one wins. The three ticket defects each remove one of those
properties, in the way real stores lose them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Ticket:
    player_id: str
    name: str
    room: str
    expires_at: float


class TicketRefused(Exception):
    """``reason`` is one of ``unknown``, ``used``, ``expired``: the protocol's 403 reasons."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"ticket {reason}")
        self.reason = reason


class TicketStore:
    """Issues tickets and consumes them at most once (unless told to misbehave)."""

    #: How many consumed or expired tickets are remembered, so a replay is answered ``used`` or
    #: ``expired`` rather than ``unknown``. Bounded: memory must not grow with the run.
    MEMORY = 100_000

    def __init__(
        self,
        ttl: float,
        *,
        replayable: bool = False,
        racy: bool = False,
        never_expire: bool = False,
        race_window: float = 0.05,
    ) -> None:
        self.ttl = ttl
        self._live: dict[str, Ticket] = {}
        self._spent: OrderedDict[str, str] = OrderedDict()
        self._replayable = replayable
        self._racy = racy
        self._never_expire = never_expire
        self._race_window = race_window

    def issue(self, player_id: str, name: str, room: str) -> str:
        ticket_id = secrets.token_urlsafe(24)  # 192 random bits
        ticket = Ticket(player_id, name, room, time.monotonic() + self.ttl)
        self._live[ticket_id] = ticket
        return ticket_id

    def live(self) -> list[Ticket]:
        return list(self._live.values())

    async def consume(self, ticket_id: str) -> Ticket:
        """Return the ticket's binding and spend it, or raise :class:`TicketRefused`."""
        if self._racy:
            ticket = self._check(ticket_id)
            await asyncio.sleep(self._race_window)  # the await between GET and DEL
            if self._live.pop(ticket_id, None) is not None:
                self._remember(ticket_id, "used")
            return ticket
        ticket = self._check(ticket_id)
        if not self._replayable:
            del self._live[ticket_id]
            self._remember(ticket_id, "used")
        return ticket

    def _check(self, ticket_id: str) -> Ticket:
        ticket = self._live.get(ticket_id)
        if ticket is None:
            raise TicketRefused(self._spent.get(ticket_id, "unknown"))
        if not self._never_expire and time.monotonic() >= ticket.expires_at:
            del self._live[ticket_id]
            self._remember(ticket_id, "expired")
            raise TicketRefused("expired")
        return ticket

    def sweep(self) -> list[Ticket]:
        """Drop expired tickets and return them, so their seat reservations can be released."""
        if self._never_expire:
            return []
        now = time.monotonic()
        expired = [tid for tid, t in self._live.items() if now >= t.expires_at]
        released = []
        for tid in expired:
            released.append(self._live.pop(tid))
            self._remember(tid, "expired")
        return released

    def _remember(self, ticket_id: str, reason: str) -> None:
        self._spent[ticket_id] = reason
        self._spent.move_to_end(ticket_id)
        while len(self._spent) > self.MEMORY:
            self._spent.popitem(last=False)
