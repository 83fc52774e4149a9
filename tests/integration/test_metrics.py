"""``/metrics`` counters move by exactly what a client did, no more and no less.

This module has a backend of its own (nobody else's traffic lands in its counters), with a known
JWT secret to sign the tokens it must refuse and a 1 s ticket lifetime to let a ticket expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from loadtest.backend import BackendProcess
from tests.client import GameClient, forge, next_of_type, player_claims, ticks, wait_until
from tests.conftest import client_of

SECRET = "metrics-secret-0123456789abcdef0123"
TICKET_TTL = 1.0
JWT_REASONS = (
    "missing",
    "malformed",
    "bad_signature",
    "alg_not_allowed",
    "expired",
    "wrong_audience",
    "missing_claim",
    "invalid",
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


pytestmark = [
    pytest.mark.backend("--game-servers", "1", "--ticket-ttl", str(TICKET_TTL), "--jwt-secret", SECRET),
    pytest.mark.xdist_group("metrics"),
]


@pytest.fixture
def c(backend: BackendProcess) -> Iterator[GameClient]:
    c = client_of(backend)
    yield c
    assert wait_until(lambda: c.metric("gamebackend_players") == 0), "sessions left behind"


class Counters:
    """A snapshot of /metrics; ``moved(name, **labels)`` is how far a sample went since."""

    def __init__(self, c: GameClient) -> None:
        self.c = c
        self.before: Samples = c.metrics()

    def moved(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.c.metrics().get(key, 0.0) - self.before.get(key, 0.0)


def test_each_token_is_counted_once(c: GameClient) -> None:
    counters = Counters(c)
    for name in ("a", "b", "c"):
        c.token(name)
    assert counters.moved("gamebackend_tokens_issued_total") == 3
    assert counters.moved("gamebackend_requests_total", endpoint="/request_token", status="200") == 3


def test_ticket_counters_follow_each_ticket(c: GameClient) -> None:
    counters = Counters(c)
    token = c.token("lifecycle")
    used, late = c.join(token)["ticket"], c.join(token)["ticket"]
    issued = time.monotonic()
    assert counters.moved("gamebackend_tickets_issued_total") == 2

    with c.connect(used) as ws:
        next_of_type(ws, "welcome")
        assert counters.moved("gamebackend_tickets_consumed_total") == 1
        assert counters.moved("gamebackend_ws_connections_opened_total") == 1
        assert c.metric("gamebackend_players") == 1
        assert c.refusal(used)[1]["reason"] == "used"
        assert c.refusal("never-issued-" + "x" * 20)[1]["reason"] == "unknown"
        while time.monotonic() < issued + TICKET_TTL + 0.2:  # let the second ticket expire
            next_of_type(ws, "tick")
        assert c.refusal(late)[1]["reason"] == "expired"
    assert wait_until(lambda: counters.moved("gamebackend_ws_connections_closed_total", by="client") == 1)

    assert counters.moved("gamebackend_tickets_consumed_total") == 1, "refusals consume nothing"
    for reason in ("used", "unknown", "expired"):
        assert counters.moved("gamebackend_tickets_rejected_total", reason=reason) == 1
    assert counters.moved("gamebackend_ws_connections_opened_total") == 1
    for by in ("server", "chaos"):
        assert counters.moved("gamebackend_ws_connections_closed_total", by=by) == 0
    assert counters.moved("gamebackend_requests_total", endpoint="/connect", status="403") == 3
    assert counters.moved("gamebackend_requests_total", endpoint="/connect", status="101") == 1


def test_a_replaced_session_is_counted_as_closed_by_the_server(c: GameClient) -> None:
    """A second session of the same player in the same room replaces the first (close code 4001)."""
    counters = Counters(c)
    token = c.token("twin")
    first = c.join(token, {"create": True})
    with c.connect(first["ticket"]) as old:
        next_of_type(old, "welcome")
        second = c.join(token, {"room": first["room"]})
        with c.connect(second["ticket"]) as new:
            next_of_type(new, "welcome")
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(1000):
                    old.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
            assert wait_until(lambda: counters.moved("gamebackend_ws_connections_closed_total", by="server") == 1)
            next_of_type(new, "tick")
    assert wait_until(lambda: counters.moved("gamebackend_ws_connections_closed_total", by="client") == 1)
    assert counters.moved("gamebackend_ws_connections_opened_total") == 2


def refused_token(reason: str) -> str | None:
    now = int(time.time())
    return {
        "missing": None,
        "malformed": "not.a.jwt",
        "bad_signature": forge(player_claims(), key="some-other-secret-0123456789abcdef"),
        "alg_not_allowed": forge(player_claims(), key=None, algorithm="none"),
        "expired": forge(player_claims(iat=now - 120, exp=now - 60), key=SECRET),
        "wrong_audience": forge(player_claims(aud="leaderboard"), key=SECRET),
        "missing_claim": forge(player_claims(sub=None), key=SECRET),
        "invalid": forge(player_claims(nbf=now + 3600), key=SECRET),
    }[reason]


@pytest.mark.parametrize("reason", JWT_REASONS)
def test_jwt_rejections_are_counted_by_reason(c: GameClient, reason: str) -> None:
    counters = Counters(c)
    token = refused_token(reason)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = c.post("/join", json={}, headers=headers)
    assert r.status_code == 401
    assert r.json()["reason"] == reason
    expected_challenge = "Bearer" if reason == "missing" else 'Bearer error="invalid_token"'
    assert r.headers["WWW-Authenticate"] == expected_challenge
    for other in JWT_REASONS:
        assert counters.moved("gamebackend_jwt_rejections_total", reason=other) == (other == reason)
    assert counters.moved("gamebackend_tickets_issued_total") == 0


@pytest.mark.parametrize(
    "claims",
    [{"sub": ""}, {"sub": 123}, {"exp": None}, {"aud": None}],
    ids=["empty sub", "numeric sub", "no exp", "no aud"],
)
def test_required_claims_are_missing_claim(c: GameClient, claims: dict) -> None:
    r = c.join_response(forge(player_claims(**claims), key=SECRET))
    assert (r.status_code, r.json()["reason"]) == (401, "missing_claim")


def test_tick_counters_and_histogram_agree(c: GameClient) -> None:
    _, joined = c.ticket("clock")
    with c.connect(joined["ticket"]) as ws:
        counters = Counters(c)
        ticks(ws, 30)
        samples = c.metrics()
    gs = (("game_server", "0"),)
    count = samples[("gamebackend_tick_duration_seconds_count", gs)]
    assert count == samples[("gamebackend_ticks_total", gs)], "one observation per tick"
    assert counters.moved("gamebackend_ticks_total", game_server="0") >= 29
    assert 0 < samples[("gamebackend_tick_duration_seconds_sum", gs)] < count * (1 / 60)
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "gamebackend_tick_duration_seconds_bucket"
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets), "cumulative buckets never fall"
    assert buckets[-1] == (float("inf"), count)
