"""The simulated player, modelled on a real Godot client.

log in → join (quick, create, or by code) → connect with the ticket → play (inputs at 20 Hz, ticks
read by the engine) → leave after the session length → again. A drop or a failed connect is
retried by the reconnect policy, with a fresh ticket each time as a real matchmaker requires; a 429
is retried after its Retry-After. HTTP goes through Locust's client so ``/request_token`` and
``/join`` show in Locust's own tables; at most ``max_http_in_flight`` requests are in flight per
player, the rest wait in FIFO order.

Extension points for other backends: pass a :class:`~loadtest.adapters.protocol.Protocol` subclass by
overriding :meth:`GamePlayer.make_protocol`, or override a flow step (:meth:`login`,
:meth:`join`, :meth:`connect`). A backend that hands out a resume credential on joining (a
Colyseus reconnection token) gets it back after a drop: the player first tries to resume with it
(:meth:`Protocol.resume_grant`) and matchmakes afresh only when that is refused.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from locust import HttpUser, task
from locust.exception import InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopUser
from requests.exceptions import Timeout  # after Locust, which must patch ssl before requests loads it

from loadtest.adapters.protocol import JoinGrant, Protocol, ProtocolError, TokenGrant, decode_json
from loadtest.collectors.ratelimit import RetryTracker
from loadtest.collectors.reconnects import Recovery
from loadtest.runtime import plugin  # noqa: F401 - a GamePlayer needs the --lt-* options and the harness
from loadtest.runtime.engine import ConnectOutcome, SessionEnd, SessionHandle
from loadtest.runtime.harness import Harness
from loadtest.runtime.network import PlayerLink, rejoin_outcome
from loadtest.runtime.target import SourceAddressAdapter, WsTarget

log = logging.getLogger(__name__)

#: Re-login this long before the token says it expires.
TOKEN_MARGIN = 5.0


class Attempt:
    """What a flow step returns when it did not get what it was for, or what a connect got.

    A step overridden in a :class:`GamePlayer` subclass (:meth:`~GamePlayer.login`,
    :meth:`~GamePlayer.join`) returns ``Attempt(reason=..., retry_after=...)`` to report a failure:
    it is a failed attempt, and the reconnect policy decides when to try again (no sooner than
    ``retry_after`` seconds when that is given and ``honour_retry_after`` is on; after
    ``max_attempts`` the player gives up on the session). ``reason`` is a short word
    (``rate_limited``, ``status_503``); ``rate_limited`` during a recovery counts as a limited
    reconnect. :meth:`~GamePlayer.connect` returns one with the open session's ``handle`` on
    success.
    """

    __slots__ = ("handle", "reason", "retry_after")

    def __init__(self, handle: SessionHandle | None = None, reason: str = "", retry_after: float | None = None):
        self.handle = handle
        self.reason = reason
        self.retry_after = retry_after


class GamePlayer(HttpUser):
    """The standard player. ``locust -f loadtest/locustfile.py`` runs it with every collector."""

    abstract = False

    def wait_time(self) -> float:
        return 0.0

    # -- set-up ---------------------------------------------------------------------------------

    def make_protocol(self) -> Protocol:
        return self.harness.protocol

    def on_start(self) -> None:
        self.harness = Harness.of(self.environment)
        self.settings = self.harness.settings
        self.protocol = self.make_protocol()
        self.index = self.harness.next_user_index()
        self.rng = random.Random()
        self.http_slots = BoundedSemaphore(self.settings.max_http_in_flight)
        self.retry = RetryTracker()
        self.name_ = f"player-{self.harness.worker_id[-6:]}-{self.index}"
        self.token: TokenGrant | None = None
        self.token_expires = 0.0
        self.handle: SessionHandle | None = None
        self.last_grant: JoinGrant | None = None
        self.resume: Any = None  # what the server gave for resuming the last session; never logged
        self.sessions_played = 0
        self.source = None
        if self.settings.source_addresses:
            self.source = self.settings.source_addresses[self.index % len(self.settings.source_addresses)]
            adapter = SourceAddressAdapter(self.source)
            self.client.mount("http://", adapter)
            self.client.mount("https://", SourceAddressAdapter(self.source))
        if self.settings.insecure:
            self.client.verify = False
        elif self.settings.ca_bundle:
            self.client.verify = self.settings.ca_bundle
        self._ws = WsTarget.from_host(self.host or "", self.settings)
        # Through the network relay when this player is on a bad link or a network storm is planned.
        self.link = PlayerLink(self)
        self.rejoin_room: str | None = None  # after a lost session: the room to join again first

    def on_stop(self) -> None:
        # Locust kills a user mid-session on ramp-down or stop: close its socket (a leak
        # otherwise, and the server would keep sending to an orphan) and count the end.
        handle, self.handle = self.handle, None
        if handle is not None:
            self._leave(handle)

    # -- the flow ---------------------------------------------------------------------------------

    @task
    def play(self) -> None:
        if self.settings.sessions_per_user and self.sessions_played >= self.settings.sessions_per_user:
            raise StopUser()
        self.sessions_played += 1
        self.play_session()
        if self.settings.think_time:
            gevent.sleep(self.settings.think_time)

    def play_session(self) -> None:
        """One session from join to leave, reconnecting by the policy whenever it is lost."""
        policy = self.settings.reconnect
        self.resume = None  # the last session was left on purpose: nothing to resume
        leave_at = time.monotonic() + self.settings.session_length
        recovery: Recovery | None = None
        failures = 0
        while True:
            attempt = self._attempt()
            if recovery is not None:
                self.harness.reconnect.attempt(recovery)
                if attempt.reason == "rate_limited":
                    self.harness.reconnect.limited(recovery)
            if attempt.handle is not None:
                failures = 0
                handle = attempt.handle
                if recovery is not None:
                    # Recovered means carrying ticks again, not merely connected.
                    gevent.wait(
                        [handle.first_tick, handle.ended], count=1, timeout=max(0.0, leave_at - time.monotonic())
                    )
                    if handle.first_tick.is_set():
                        self.harness.reconnect.recovered(recovery)
                        recovery = None
                end = self.hold(handle, leave_at)
                if end is None:
                    if recovery is not None:
                        self.harness.reconnect.gave_up(recovery)  # connected, but never ticked again
                    return  # left as planned
                # A drop before the player recovered is part of the same incident, not a new one.
                recovery = recovery or self.harness.reconnect.dropped(end.reason)
            failures += 1
            if failures > policy.max_attempts:
                if recovery is not None:
                    self.harness.reconnect.gave_up(recovery)
                # The next session starts after a pause too: a target that fails every attempt at
                # once must not turn giving up into a hot loop of fresh sessions.
                gevent.sleep(max(policy.base, policy.delay(failures, self.rng)))
                return
            delay = policy.delay(failures, self.rng)
            if attempt.retry_after is not None and self.settings.honour_retry_after:
                delay = max(delay, attempt.retry_after)
            gevent.sleep(delay)

    def _attempt(self) -> Attempt:
        """One join-and-connect; whatever goes wrong is a counted failure the policy retries.

        A flow step that raises (a :class:`Protocol` subclass's bug, a reply nothing anticipated)
        would otherwise end Locust's task at once, and Locust starts it again at once: a hot loop
        that skips the reconnect policy and fills the log with tracebacks.
        """
        try:
            return self.join_and_connect()
        except _LOCUST_CONTROL:
            raise
        except Exception as exc:
            name = type(exc).__name__
            self.harness.sessions.protocol_error("player", f"unexpected_{name}")
            _log_once(name, f"a player step failed unexpectedly (protocol_error:player:unexpected_{name})", exc)
            return Attempt(reason="error")

    def join_and_connect(self) -> Attempt:
        resumed = self.resume_session()
        if resumed is not None:
            return resumed
        token = self.login()
        if isinstance(token, Attempt):
            return token
        grant = self.join(token)
        if isinstance(grant, Attempt):
            return grant
        return self.connect(grant)

    def resume_session(self) -> Attempt | None:
        """Resume the dropped session with the server's resume credential, if it gave one.

        None means "matchmake afresh": there was nothing to resume, or the server refused it (the
        room does not hold seats for reconnection, or the credential expired).
        """
        resume, self.resume = self.resume, None
        if resume is None or self.last_grant is None:
            return None
        grant = self.protocol.resume_grant(self.last_grant, resume)
        if grant is None:
            return None
        attempt = self.connect(grant, name="resume")
        if attempt.handle is not None:
            self.harness.reconnect.resumed()
            return attempt
        self.harness.reconnect.resume_refused(attempt.reason)
        return None

    def login(self) -> TokenGrant | Attempt:
        if self.token is not None and time.monotonic() < self.token_expires:
            return self.token
        path, body = self.protocol.token_request(self.name_)
        grant = self.post_json(path, body, parse=self.protocol.parse_token)
        if isinstance(grant, Attempt):
            return grant
        self.token = grant
        lifetime = grant.expires_in if grant.expires_in is not None else 3600.0
        self.token_expires = time.monotonic() + max(1.0, lifetime - TOKEN_MARGIN)
        return grant

    def join(self, token: TokenGrant) -> JoinGrant | Attempt:
        rejoin, self.rejoin_room = self.rejoin_room, None
        mode, room = ("code", rejoin) if rejoin else (self.settings.join_mode, self.settings.room)
        path, body = self.protocol.join_request(mode, room)
        grant = self.post_json(
            path, body, headers=self.protocol.auth_headers(token.token), parse=self.protocol.parse_join
        )
        if isinstance(grant, Attempt) and grant.reason in {f"status_{s}" for s in self.protocol.auth_failed_statuses}:
            self.token = None  # expired or revoked: log in again on the next attempt
        if rejoin:
            rejoin_outcome(self, grant)
        return grant

    def connect(self, grant: JoinGrant, name: str = "connect") -> Attempt:
        spec = self._ws.spec(self.protocol.connect_url(self._ws.base, grant), self.protocol, self.settings, self.source)
        spec = self.link.spec(spec)
        handle = self.harness.engine.open(spec)
        self.handle = handle
        # The engine always answers within the open timeout; the bound is for an engine bug.
        outcome = handle.connected.wait(timeout=2 * self.settings.connect_timeout + 5.0)
        if outcome is None:
            self.harness.engine.close(handle, abort=True)
            outcome = ConnectOutcome(False, reason="timeout")
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=outcome.handshake_ms,
            response_length=0,
            exception=None if outcome.ok else ConnectionError(outcome.reason),
            context={},
        )
        if outcome.ok:
            self.harness.sessions.connected(outcome.handshake_ms)
            self.last_grant, self.resume = grant, outcome.resume
            return Attempt(handle)
        self.handle = None
        self.harness.sessions.connect_failed(outcome.reason)
        return Attempt(reason=outcome.reason)

    def hold(self, handle: SessionHandle, leave_at: float) -> SessionEnd | None:
        """Play until ``leave_at``; return the end if the session was lost first, else None."""
        end = handle.ended.wait(timeout=max(0.0, leave_at - time.monotonic()))
        self.handle = None
        if end is None:
            self._leave(handle)
            return None
        self._record_end(end)
        if not end.expected and self.settings.network.rejoin_same_room and self.last_grant is not None:
            self.rejoin_room = self.last_grant.room
        return end if not end.expected else None

    def _leave(self, handle: SessionHandle) -> None:
        """Close a session we chose to end, wait (bounded) for the close, and record it."""
        if not handle.ended.ready():
            self.harness.engine.close(handle)
        end = handle.ended.wait(timeout=self.settings.close_timeout + 1.0) or SessionEnd("client", None, 0.0, 0)
        self._record_end(end)

    def _record_end(self, end: SessionEnd) -> None:
        if end.reason == "not_connected":
            return
        self.harness.sessions.ended(end.reason, expected=end.expected)
        self.environment.events.request.fire(
            request_type="WS",
            name=f"session end: {end.reason}",
            response_time=end.duration_s * 1000,
            response_length=end.messages,
            exception=None if end.expected else ConnectionError(f"session lost: {end.reason}"),
            context={},
        )

    # -- HTTP ---------------------------------------------------------------------------------------

    def post_json(self, path: str, body: Any, *, parse: Any, headers: dict[str, str] | None = None) -> Any:
        """POST ``body`` as JSON through Locust's client; ``parse(<decoded reply>)``, or an
        :class:`Attempt` saying why not.

        Use it from an overridden flow step rather than ``self.client``: it keeps the player within
        ``max_http_in_flight``, counts 429s and their Retry-After, and names the request by its
        path in Locust's tables. ``parse`` runs inside Locust's ``catch_response`` block, so a
        reply of the wrong shape (a :class:`~loadtest.adapters.protocol.ProtocolError` from it) is
        a failure in Locust's tables as well as a counted ``protocol_error:<path>:<reason>``.
        """
        with self.http_slots:
            self.harness.rate_limit.requesting(self.retry, path)
            deadline = self.settings.connect_timeout
            # ``timeout`` is per read: a reply dripping a byte a second never trips it. The gevent
            # timer bounds the whole step; it raises a requests exception, so Locust records the
            # failure in its own tables as it does any other.
            timer = gevent.Timeout(deadline, _DeadlineExceeded(f"{path}: no complete reply within {deadline:g} s"))
            timer.start()
            try:
                response = self.client.post(
                    path, json=body, headers=headers, name=path, catch_response=True, timeout=deadline
                )
            finally:
                expired = not timer.pending
                timer.close()
            with response:
                status = response.status_code
                if status == 0:
                    if expired or _is_timeout(response.error):
                        # Counted with its reason: a reply that never completes is the target's
                        # answer, and would otherwise show only as a Locust failure.
                        reason = "deadline_exceeded" if expired else "timeout"
                        self.harness.sessions.protocol_error(path, reason)
                    else:
                        reason = "connection_error"
                    response.failure(f"{reason} ({type(response.error).__name__})")
                    return Attempt(reason=reason)
                if status == 429:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    self.harness.rate_limit.limited(self.retry, path, retry_after)
                    response.failure(f"429 rate limited (Retry-After {response.headers.get('Retry-After')})")
                    return Attempt(reason="rate_limited", retry_after=retry_after)
                if status != 200:
                    detail = self.protocol.describe_status(status, None)
                    response.failure(f"HTTP {status} ({detail})" if detail else f"HTTP {status}")
                    return Attempt(reason=f"status_{status}")
                try:
                    return parse(decode_json(response.text))
                except ProtocolError as exc:
                    self.harness.sessions.protocol_error(path, exc.reason)
                    response.failure(f"protocol error: {exc.reason}")
                    return Attempt(reason="protocol_error")
                except Exception as exc:  # a parser's bug or a reply nothing anticipated
                    name = type(exc).__name__
                    self.harness.sessions.protocol_error(path, f"unexpected_{name}")
                    _log_once(name, f"parsing the reply of {path} failed (counted as protocol_error)", exc)
                    response.failure(f"protocol error: unexpected {name}")
                    return Attempt(reason="protocol_error")


class _DeadlineExceeded(Timeout):
    """An HTTP step that did not complete within its total deadline."""


_LOCUST_CONTROL = (StopUser, InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately)
_logged: set[str] = set()


def _log_once(key: str, message: str, exc: BaseException) -> None:
    """An unexpected exception's traceback, once per kind per process: a bug to see, not a flood."""
    if key in _logged:
        return
    _logged.add(key)
    log.warning("%s: %r", message, exc, exc_info=exc)


def _is_timeout(error: BaseException | None) -> bool:
    return isinstance(error, Timeout)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from game backends; treated as absent
    # NaN, inf, or a wait past a day is no instruction a player can follow; treated as absent.
    return seconds if 0 <= seconds <= 86400 else None
