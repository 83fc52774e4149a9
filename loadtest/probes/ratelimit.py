"""The rate-limit probe: bursts from one source address at rising rates against one endpoint.

Each step offers ``rate`` requests per second for a few seconds, every request on its own
schedule (an open model: a slow answer does not slow the offer). From the steps come the offered
and accepted rates, the rate at which 429s begin, the Retry-After values, and whether any limit is
enforced at all. After the first limited step the bucket is empty, so the accepted rate of the
later steps is the sustained limit.
"""

from __future__ import annotations

import logging

import gevent

from loadtest.adapters.protocol import JOIN_STEP, TOKEN_STEP, Protocol, ProtocolError
from loadtest.collectors.ratelimit import RateLimitProbeCollector
from loadtest.config.settings import PlayerSettings
from loadtest.probes.http import TIMEOUT, json_or_none, probe_session, probe_source

log = logging.getLogger(__name__)


class RateLimitProbe:
    """Rising bursts against one endpoint, recorded by step. An adapter's probe subclasses it to add
    steps (Colyseus adds seat hoarding after :meth:`run`), using :meth:`token`, ``self.http`` (a
    requests session bound to the probe's source address) and ``self.collector``."""

    def __init__(
        self, host: str, settings: PlayerSettings, protocol: Protocol, collector: RateLimitProbeCollector
    ) -> None:
        self.host = host.rstrip("/")
        self.settings = settings
        self.protocol = protocol
        self.collector = collector
        self.http = probe_session(settings, probe_source(host, settings.probes.source_address, "127.0.0.254"))
        # The setting names a step of the flow ("token" or "join", or a path of one, the reference
        # backend's included); the path probed is the protocol's, which differs on other backends
        # (Colyseus: /matchmake/<method>/<room>). The settings refused any other value.
        step = protocol.resolve_step(settings.probes.rate_limit_endpoint or TOKEN_STEP) or TOKEN_STEP
        self.joins = step == JOIN_STEP
        self.endpoint = protocol.step_paths()[step]
        self._headers: dict[str, str] = {}

    def run(self) -> None:
        probes = self.settings.probes
        if self.joins:
            try:
                self._headers = self.protocol.auth_headers(self.token())
            except (OSError, ProtocolError) as exc:
                log.warning("rate-limit probe: could not get a token for %s: %s", self.endpoint, exc)
                return
        for rate in probes.rate_limit_steps:
            count = max(1, round(rate * probes.rate_limit_step_seconds))
            shots = [gevent.spawn_later(i / rate, self._fire, rate) for i in range(count)]
            gevent.joinall(shots, timeout=probes.rate_limit_step_seconds + TIMEOUT + 1)
            self.collector.step_seconds(self.endpoint, rate, probes.rate_limit_step_seconds)

    def token(self) -> str:
        """A real token from the backend, for probing ``/join`` (and for a subclass's own steps)."""
        path, body = self.protocol.token_request("rate-probe")
        r = self.http.post(self.host + path, json=body, timeout=TIMEOUT)
        return self.protocol.parse_token(json_or_none(r)).token

    def _fire(self, rate: float) -> None:
        if self.joins:
            path, body = self.protocol.join_request("quick")
        else:
            path, body = self.protocol.token_request("rate-probe")
        try:
            r = self.http.post(self.host + path, json=body, headers=self._headers, timeout=TIMEOUT)
        except OSError:
            self.collector.step(self.endpoint, rate, "error")
            return
        if r.status_code == 429:
            try:
                retry_after = float(r.headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
            self.collector.step(self.endpoint, rate, "limited", retry_after)
        elif r.status_code < 300:
            self.collector.step(self.endpoint, rate, "accepted")
        else:
            self.collector.step(self.endpoint, rate, "other")
