"""Replay and forgery probes: try to reuse, race, outlive or fake a credential, and record the verdict.

Each kind is one small attack a cheater or a buggy client makes for real:

- ``ticket_reuse``: connect with a ticket that was already used;
- ``ticket_race``: open several sockets at the same instant with one fresh ticket (more than one
  winner means check-then-consume is not atomic);
- ``ticket_expired``: wait past ``expires_in``, then connect;
- ``ticket_forged``: connect with a ticket the server never issued;
- ``jwt_alg_none``: ``/join`` with the real token's claims, unsigned;
- ``jwt_bad_signature``: ``/join`` with the real token, signature altered;
- ``jwt_expired``: ``/join`` with an expired token (signed with ``LOADTEST_JWT_SECRET`` when given,
  else a real token waited out if it expires soon enough);
- ``jwt_wrong_audience``: ``/join`` with a token for another audience (needs the secret);
- ``reconnect_token_reuse``: only where the backend's adapter supports it (Colyseus).

A correct backend rejects every one; each acceptance is a finding.
"""

from __future__ import annotations

import base64
import itertools
import logging
import os
import secrets
import time
from typing import Any

import gevent
import gevent.pool
import jwt

from loadtest.adapters.protocol import JoinGrant, Protocol, ProtocolError
from loadtest.collectors.replay import KINDS, ReplayCollector
from loadtest.config.settings import JWT_SECRET_ENV, PlayerSettings
from loadtest.errors import ProbeSkipped
from loadtest.probes.http import TIMEOUT, json_or_none, probe_session, probe_source
from loadtest.runtime.engine import ConnectOutcome, SessionHandle, WebSocketEngine
from loadtest.runtime.target import WsTarget

log = logging.getLogger(__name__)
CONCURRENT = 16


#: Why a JWT kind does not apply: the backend's tokens are not JWTs (``skipped:<kind>:not_applicable_opaque_token``).
NOT_JWT = "not_applicable_opaque_token"


def _excerpt(exc: BaseException, limit: int = 160) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


class ReplayProbe:
    """Runs the replay and forgery kinds round-robin and records each verdict.

    Each kind is a method named after it that returns True when the backend accepted the attack.
    An adapter's probe subclasses this, adds its kinds to :attr:`supported` and overrides the
    kinds that differ, built from the steps below; a step that cannot go on raises
    :class:`~loadtest.errors.ProbeSkipped` with a countable reason.
    """

    #: The kinds this probe can carry out against its backend; an adapter's probe adds its own.
    supported: tuple[str, ...] = tuple(k for k in KINDS if k != "reconnect_token_reuse")

    def __init__(
        self,
        host: str,
        settings: PlayerSettings,
        protocol: Protocol,
        engine: WebSocketEngine,
        collector: ReplayCollector,
    ) -> None:
        self.host = host.rstrip("/")
        self.settings = settings
        self.protocol = protocol
        self.engine = engine
        self.collector = collector
        self.source = probe_source(host, settings.probes.source_address, "127.0.0.253")
        self.http = probe_session(settings, self.source)
        self.target = WsTarget.from_host(host, settings)
        kinds = settings.probes.replay_kinds or self.supported
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown replay kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
        self.kinds = tuple(kinds)

    def run(self, rate: float) -> None:
        """Start one probe every 1/rate seconds, round-robin over the kinds, until killed."""
        pool = gevent.pool.Pool(CONCURRENT)
        try:
            for kind in itertools.cycle(self.kinds):
                pool.spawn(self.probe, kind)
                gevent.sleep(1.0 / rate)
        finally:
            pool.kill(block=True, timeout=5)

    def probe(self, kind: str) -> bool | None:
        """Run one probe of ``kind``; True if the attack was accepted, None if it could not run."""
        self.collector.started(kind)
        try:
            if kind not in self.supported:
                raise ProbeSkipped("not_supported")
            accepted = getattr(self, kind)()
        except ProbeSkipped as skip:
            self.collector.skipped(kind, skip.why)
            return None
        except ProtocolError as exc:
            log.warning("replay probe %s could not run: the target's reply broke the protocol (%s)", kind, exc.reason)
            self.collector.skipped(kind, f"protocol_error_{exc.reason}")
            return None
        except (OSError, ValueError) as exc:
            log.warning("replay probe %s could not run: %s", kind, _excerpt(exc))
            self.collector.skipped(kind, "error")
            return None
        except Exception as exc:  # a probe must never die with a traceback for what a target sent
            log.warning("replay probe %s failed unexpectedly: %r", kind, exc, exc_info=exc)
            self.collector.skipped(kind, f"unexpected_{type(exc).__name__}")
            return None
        self.collector.verdict(kind, accepted)
        return accepted

    # -- steps (for the kinds here and for a subclass's own) ------------------------------------------

    def _claims(self, token: str) -> dict[str, Any]:
        """The token's claims, unverified; a token that is not a JWT makes the JWT kinds not
        applicable (a backend with opaque session tokens), which is no verdict either way."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.exceptions.PyJWTError:
            raise ProbeSkipped(NOT_JWT) from None
        if not isinstance(claims, dict):
            raise ProbeSkipped(NOT_JWT)
        return claims

    def token(self) -> str:
        """A real token from the backend (skipped as ``token_<status>`` if it refuses)."""
        path, body = self.protocol.token_request("replay-probe")
        r = self.http.post(self.host + path, json=body, timeout=TIMEOUT)
        if r.status_code != 200:
            raise ProbeSkipped(f"token_{r.status_code}")
        return self.protocol.parse_token(json_or_none(r)).token

    def join_response(self, token: str) -> Any:
        """The raw reply to a quick join with ``token``, whatever its status."""
        path, body = self.protocol.join_request("quick")
        return self.http.post(self.host + path, json=body, headers=self.protocol.auth_headers(token), timeout=TIMEOUT)

    def join(self, token: str) -> JoinGrant:
        """A real grant (ticket) for ``token`` (skipped as ``join_<status>`` if refused)."""
        r = self.join_response(token)
        if r.status_code != 200:
            raise ProbeSkipped(f"join_{r.status_code}")
        return self.protocol.parse_join(json_or_none(r))

    def open_session(self, grant: JoinGrant) -> SessionHandle:
        """Open a WebSocket with ``grant`` on the engine; the session does not count as a player's."""
        url = self.protocol.connect_url(self.target.base, grant)
        return self.engine.open(self.target.spec(url, self.protocol, self.settings, self.source, measure=False))

    def outcome(self, handle: SessionHandle) -> ConnectOutcome:
        """Wait for the connect to be accepted or refused; a refusal is recorded with its reason."""
        outcome = handle.connected.get(timeout=self.settings.connect_timeout + 5)
        if not outcome.ok and outcome.status is not None:
            body = outcome.body if isinstance(outcome.body, dict) else {}
            self.collector.refused("ticket", str(body.get("reason") or f"status_{outcome.status}"))
        return outcome

    def close_session(self, handle: SessionHandle) -> None:
        """Close a session this probe opened and wait (bounded) for it to end."""
        self.engine.close(handle)
        handle.ended.wait(timeout=self.settings.close_timeout + 2)

    def connect_once(self, grant: JoinGrant) -> bool:
        """Connect with ``grant``: True if accepted (then closed), False if refused; skipped when
        the connect failed without an answer."""
        handle = self.open_session(grant)
        outcome = self.outcome(handle)
        if outcome.ok:
            self.close_session(handle)
        elif outcome.status is None:
            raise ProbeSkipped(f"connect_{outcome.reason}")
        return outcome.ok

    def join_with(self, token: str) -> bool:
        """Join with a (forged) token: True if accepted, False if refused (recorded with its reason)."""
        r = self.join_response(token)
        if r.status_code == 200:
            return True
        if r.status_code == 429:
            raise ProbeSkipped("rate_limited")
        body = json_or_none(r)
        reason = body.get("reason") if isinstance(body, dict) else None
        self.collector.refused("jwt", str(reason or f"status_{r.status_code}"))
        return False

    # -- the kinds --------------------------------------------------------------------------

    def ticket_reuse(self) -> bool:
        grant = self.join(self.token())
        if not self.connect_once(grant):
            raise ProbeSkipped("first_connect_refused")
        return self.connect_once(grant)

    def ticket_race(self) -> bool:
        grant = self.join(self.token())
        handles = [self.open_session(grant) for _ in range(self.settings.probes.race_sockets)]
        winners = [h for h in handles if self.outcome(h).ok]
        for handle in winners:
            self.close_session(handle)
        if not winners:
            raise ProbeSkipped("no_winner")
        return len(winners) > 1

    def ticket_expired(self) -> bool:
        grant = self.join(self.token())
        lifetime = grant.expires_in
        if lifetime is None:
            # The join reply states no lifetime under protocol.expires_in_field: nothing to wait out.
            raise ProbeSkipped("lifetime_unknown_set_protocol_expires_in_field")
        if lifetime > self.settings.probes.max_expiry_wait:
            raise ProbeSkipped("expiry_too_long")
        gevent.sleep(lifetime + 1.0)
        return self.connect_once(grant)

    def ticket_forged(self) -> bool:
        return self.connect_once(JoinGrant(secrets.token_urlsafe(24), "", None))

    def jwt_alg_none(self) -> bool:
        claims = self._claims(self.token())
        return self.join_with(jwt.encode(claims, key=None, algorithm="none"))

    def jwt_bad_signature(self) -> bool:
        token = self.token()
        self._claims(token)
        header, payload, signature = token.split(".")
        forged = base64.urlsafe_b64encode(secrets.token_bytes(len(signature) * 3 // 4 or 32)).rstrip(b"=").decode()
        return self.join_with(f"{header}.{payload}.{forged}")

    def jwt_expired(self) -> bool:
        token = self.token()
        claims = self._claims(token)
        secret = os.environ.get(JWT_SECRET_ENV)
        if secret:
            now = int(time.time())
            claims.update(iat=now - 600, exp=now - 300)
            return self.join_with(jwt.encode(claims, secret, algorithm="HS256"))
        exp = claims.get("exp")
        wait = (exp - time.time() + 1.0) if isinstance(exp, int | float) else None
        if wait is None or wait > self.settings.probes.max_expiry_wait:
            raise ProbeSkipped("no_secret")
        gevent.sleep(max(0.0, wait))
        return self.join_with(token)

    def jwt_wrong_audience(self) -> bool:
        # Opaque tokens first: with them the kind does not apply, whether or not a key was given.
        claims = self._claims(self.token())
        secret = os.environ.get(JWT_SECRET_ENV)
        if not secret:
            raise ProbeSkipped("no_secret")
        claims["aud"] = f"not-{claims.get('aud', 'you')}"
        return self.join_with(jwt.encode(claims, secret, algorithm="HS256"))
