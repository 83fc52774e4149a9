"""A plain synchronous game client for tests: what a Godot or Unity client does, step by step.

Tests read like the protocol: ``token = c.token()``, ``ticket = c.join(token)["ticket"]``,
``with c.connect(ticket) as ws: ...``. HTTP goes through ``requests``, WebSockets through
``websockets.sync`` (safe here: the test process never imports locust, so gevent is not patched in).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import jwt
import requests
from prometheus_client.parser import text_string_to_metric_families
from requests.adapters import HTTPAdapter
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10.0


class GameClient:
    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        verify: object = True,
        admin_token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = self.base_url.replace("http", "ws", 1)
        self.http = session or requests.Session()
        self.verify = verify
        self.admin_token = admin_token

    # -- HTTP -----------------------------------------------------------------------------

    def post(self, path: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("verify", self.verify)
        return self.http.post(self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("verify", self.verify)
        return self.http.get(self.base_url + path, **kwargs)

    def token(self, name: str = "tester") -> str:
        r = self.post("/request_token", json={"name": name})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def join_response(self, token: str, body: dict | None = None) -> requests.Response:
        return self.post("/join", json=body if body is not None else {}, headers={"Authorization": f"Bearer {token}"})

    def join(self, token: str, body: dict | None = None) -> dict:
        r = self.join_response(token, body)
        assert r.status_code == 200, r.text
        return r.json()

    def ticket(self, name: str = "tester", body: dict | None = None) -> tuple[str, dict]:
        """Log in and join; return (token, join reply)."""
        token = self.token(name)
        return token, self.join(token, body)

    # -- WebSocket ------------------------------------------------------------------------

    @contextmanager
    def connect(self, ticket: str, **kwargs: object) -> Iterator[ClientConnection]:
        kwargs.setdefault("open_timeout", TIMEOUT)
        kwargs.setdefault("close_timeout", 2)
        with connect(f"{self.ws_url}/connect?ticket={ticket}", **kwargs) as ws:
            yield ws

    def refusal(self, ticket: str, **kwargs: object) -> tuple[int, dict]:
        """Try to connect with a ticket that should be refused; return (HTTP status, JSON body)."""
        try:
            with self.connect(ticket, **kwargs):
                return 101, {}
        except InvalidStatus as exc:
            response = exc.response
            return response.status_code, json.loads(response.body or b"{}")

    # -- admin ----------------------------------------------------------------------------

    def admin_headers(self) -> dict[str, str]:
        assert self.admin_token, "this client was not given the admin token"
        return {"Authorization": f"Bearer {self.admin_token}"}

    def admin_stats(self) -> dict:
        r = self.get("/admin/api/stats", headers=self.admin_headers())
        assert r.status_code == 200, r.text
        return r.json()

    def chaos(self, **body: object) -> dict:
        r = self.post("/admin/api/chaos", json=body, headers=self.admin_headers())
        assert r.status_code == 200, r.text
        return r.json()

    # -- metrics --------------------------------------------------------------------------

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics`` keyed by (name, sorted labels)."""
        r = self.get("/metrics")
        assert r.status_code == 200, r.text
        samples = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


class SourceAddressAdapter(HTTPAdapter):
    """Sends every request from one local address, so a test can be several clients on 127.0.0.0/8."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(address: str) -> requests.Session:
    """A ``requests`` session whose connections come from ``address`` (e.g. ``127.0.0.7``)."""
    session = requests.Session()
    adapter = SourceAddressAdapter(address)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def player_claims(**overrides: object) -> dict:
    """Claims shaped like the matchmaker's own tokens, for forging tokens it should refuse."""
    now = int(time.time())
    claims = {"sub": "p_forged", "name": "mallory", "iat": now, "exp": now + 600, "aud": "matchmaker", "jti": "x"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def forge(claims: dict, key: str | None = "not-the-secret", algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key=key, algorithm=algorithm)


def receive_json(ws: ClientConnection, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def next_of_type(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict:
    """Skip messages until one of ``kind`` arrives (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        message = receive_json(ws, left)
        if message.get("type") == kind:
            return message
    raise TimeoutError(f"no {kind!r} message within {timeout} s")


def ticks(ws: ClientConnection, count: int, timeout: float = 10.0) -> list[dict]:
    """The next ``count`` tick messages."""
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < count:
        out.append(next_of_type(ws, "tick", max(0.1, deadline - time.monotonic())))
    return out


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true or ``timeout``; bounded, never a bare loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
