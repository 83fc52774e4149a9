"""Replay and rate-limit probes for Colyseus, where a seat reservation is the ticket.

Most replay kinds need nothing Colyseus-specific: the reference probe reuses, races and outlives a
reservation through the adapter's protocol, and the adapter's join handshake turns Colyseus's
ERROR frame into a refused connect. What differs:

- ``ticket_forged``: a reservation only names a room it belongs to, so the forgery is a made-up
  sessionId on a real room;
- ``reconnect_token_reuse``: drop a session, resume it with its reconnection token (which must
  work when the room allows reconnection), then present the same token again while the resumed
  session is live. Acceptance would let anyone who saw a token take over a player's seat.

The rate-limit probe adds seat hoarding: after the rate steps, one token asks for up to
``probes.seat_hoarding`` reservations. Colyseus limits none, and unused reservations count
toward a room's ``maxClients`` until they expire, so one client can fill rooms it never plays in.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace

import gevent

from loadtest.adapters.protocol import ProtocolError
from loadtest.errors import ProbeSkipped
from loadtest.probes.http import TIMEOUT, json_or_none
from loadtest.probes.ratelimit import RateLimitProbe
from loadtest.probes.replay import ReplayProbe

log = logging.getLogger(__name__)
#: Longest the hoarding phase runs, whatever the number asked for.
HOARD_SECONDS = 10.0
#: Time for the server to notice an aborted socket before the resume is tried.
DROP_SETTLE = 0.2


class ColyseusReplayProbe(ReplayProbe):
    supported = (*ReplayProbe.supported, "reconnect_token_reuse")

    def ticket_forged(self) -> bool:
        grant = self.join(self.token())
        return self.connect_once(replace(grant, ticket=secrets.token_urlsafe(7)))

    def reconnect_token_reuse(self) -> bool:
        grant = self.join(self.token())
        handle = self.open_session(grant)
        outcome = self.outcome(handle)
        if not outcome.ok:
            raise ProbeSkipped("first_connect_refused")
        if not outcome.resume:
            self.close_session(handle)
            raise ProbeSkipped("no_reconnection_token")
        self.engine.close(handle, abort=True)  # a drop, not a leave: the room may hold the seat
        handle.ended.wait(timeout=self.settings.close_timeout + 2)
        gevent.sleep(DROP_SETTLE)
        again = self.protocol.resume_grant(grant, outcome.resume)
        if again is None:
            raise ProbeSkipped("no_resume")
        resumed = self.open_session(again)
        if not resumed.connected.get(timeout=self.settings.connect_timeout + 5).ok:
            raise ProbeSkipped("reconnection_not_allowed")
        try:
            reuse = self.open_session(again)
            accepted = self.outcome(reuse).ok
            if accepted:
                self.close_session(reuse)
        finally:
            self.close_session(resumed)
        return accepted


class ColyseusRateLimitProbe(RateLimitProbe):
    def run(self) -> None:
        super().run()
        wanted = self.settings.probes.seat_hoarding
        if wanted:
            self.hoard(wanted)

    def hoard(self, wanted: int) -> None:
        """Ask for ``wanted`` reservations with one token, one after the other, bounded in time."""
        try:
            headers = self.protocol.auth_headers(self.token())
        except (OSError, ProtocolError) as exc:
            log.warning("seat-hoarding probe: could not get a token: %s", exc)
            return
        path, body = self.protocol.join_request("quick")
        granted, rooms, refused = 0, set(), None
        deadline = time.monotonic() + HOARD_SECONDS
        for _ in range(wanted):
            if time.monotonic() > deadline:
                break
            try:
                r = self.http.post(self.host + path, json=body, headers=headers, timeout=TIMEOUT)
            except OSError as exc:
                log.warning("seat-hoarding probe: request failed: %s", exc)
                refused = "error"
                break
            if r.status_code != 200:
                refused = str(r.status_code)
                break
            try:
                rooms.add(self.protocol.parse_join(json_or_none(r)).room)
            except ProtocolError:
                refused = "protocol_error"
                break
            granted += 1
        self.collector.hoarding(self.endpoint, wanted, granted, len(rooms), refused)
