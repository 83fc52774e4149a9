"""Rate limits at their real defaults: token buckets per client IP and per player, answered 429.

One backend with the default limits serves the whole module; each test speaks from its own
loopback addresses (127.0.0.x), so every test starts with full buckets. Defaults: /request_token
5/s burst 10 per IP; /join 10/s burst 20 per IP and 2/s burst 5 per player.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
import requests

from loadtest.backend import BackendProcess
from tests.client import GameClient, session_from

TRUSTED_PROXY = "127.0.0.5"
#: Addresses handed out to tests; 127.0.0.5 is the trusted proxy and 127.0.0.9 is used elsewhere.
_addresses = (f"127.0.0.{n}" for n in itertools.count(20))


pytestmark = [
    pytest.mark.backend("--game-servers", "1", "--trusted-proxy", TRUSTED_PROXY, generous=False),
    pytest.mark.xdist_group("rate_limits"),
]


@pytest.fixture
def from_address(backend: BackendProcess) -> Callable[[str | None], GameClient]:
    """A client speaking from ``address``, or from a fresh loopback address no test used before."""

    def make(address: str | None = None) -> GameClient:
        return GameClient(backend.url, session=session_from(address or next(_addresses)))

    return make


@pytest.fixture
def observer(backend: BackendProcess) -> GameClient:
    return GameClient(backend.url)


def until_refused(
    send: Callable[[], requests.Response], *, expect: int = 200, limit: int = 100
) -> tuple[int, requests.Response]:
    """Send until the first 429; return (requests let through before it, the 429)."""
    for allowed in range(limit):
        r = send()
        if r.status_code == 429:
            return allowed, r
        assert r.status_code == expect, r.text
    pytest.fail(f"no 429 within {limit} requests")


def burst_then_429(send: Callable[[], requests.Response], burst: int, rate: float, **kw: int) -> requests.Response:
    """Exactly the token-bucket contract: a full bucket, plus what refilled while we were sending."""
    started = time.monotonic()
    allowed, refused = until_refused(send, **kw)
    elapsed = time.monotonic() - started
    assert burst <= allowed <= burst + rate * elapsed, (allowed, elapsed)
    assert_is_429(refused)
    return refused


def assert_is_429(r: requests.Response) -> int:
    assert r.status_code == 429
    retry_after = r.headers["Retry-After"]
    assert retry_after.isdigit(), "Retry-After is whole seconds"
    assert r.json() == {"error": "rate_limited", "retry_after": int(retry_after)}
    assert 1 <= int(retry_after) <= 60
    return int(retry_after)


def limited(c: GameClient, endpoint: str, scope: str) -> float:
    return c.metric("gamebackend_rate_limited_total", endpoint=endpoint, scope=scope)


def test_request_token_allows_a_burst_of_10_then_429(from_address, observer: GameClient) -> None:
    c = from_address()
    before = limited(observer, "/request_token", "ip")
    refused = burst_then_429(lambda: c.post("/request_token", json={"name": "burst"}), burst=10, rate=5)
    assert refused.headers["Retry-After"] == "1", "one token comes back within 0.2 s"
    extra = [c.post("/request_token").status_code for _ in range(3)]
    assert limited(observer, "/request_token", "ip") - before == 1 + extra.count(429)


def test_honouring_retry_after_gets_through_again(from_address) -> None:
    c = from_address()
    _, refused = until_refused(lambda: c.post("/request_token"))
    time.sleep(assert_is_429(refused))
    assert c.post("/request_token").status_code == 200


def test_buckets_are_per_address(from_address) -> None:
    first, second = from_address(), from_address()
    until_refused(lambda: first.post("/request_token"))
    assert second.post("/request_token").status_code == 200
    assert first.post("/request_token").status_code == 429


def test_join_per_player_allows_5_then_429_from_any_address(from_address, observer: GameClient) -> None:
    """The player bucket follows the token, not the address: switching address does not help."""
    token = from_address().token("hopper")
    clients = itertools.cycle([from_address(), from_address()])
    before_player = limited(observer, "/join", "player")
    before_ip = limited(observer, "/join", "ip")
    burst_then_429(lambda: next(clients).join_response(token), burst=5, rate=2)
    assert limited(observer, "/join", "player") - before_player == 1
    assert limited(observer, "/join", "ip") - before_ip == 0
    assert next(clients).join_response(from_address().token("other")).status_code == 200


def test_join_per_address_allows_20_then_429(from_address, observer: GameClient) -> None:
    """Six players from one address: each has budget left, so the address bucket is what stops them."""
    minter = from_address()
    tokens = itertools.cycle([minter.token(f"p{i}") for i in range(6)])
    c = from_address()
    before_ip = limited(observer, "/join", "ip")
    before_player = limited(observer, "/join", "player")
    burst_then_429(lambda: c.join_response(next(tokens)), burst=20, rate=10)
    assert limited(observer, "/join", "ip") - before_ip == 1
    assert limited(observer, "/join", "player") - before_player == 0


def test_rate_limit_comes_before_authentication(from_address) -> None:
    """A flood of bad tokens is limited like any other: refusing it must not be free."""
    c = from_address()
    burst_then_429(lambda: c.join_response("not-a-jwt"), burst=20, rate=10, expect=401)


def token_with_forwarded_for(c: GameClient, forwarded: str) -> requests.Response:
    return c.post("/request_token", headers={"X-Forwarded-For": forwarded})


def test_forwarded_for_is_honoured_from_a_trusted_proxy(from_address) -> None:
    proxy = from_address(TRUSTED_PROXY)
    burst_then_429(lambda: token_with_forwarded_for(proxy, "203.0.113.10"), burst=10, rate=5)
    others = [token_with_forwarded_for(proxy, f"203.0.113.{100 + i}").status_code for i in range(12)]
    assert others == [200] * 12, "each client behind the proxy has its own bucket"


def test_forwarded_for_is_ignored_from_anyone_else(from_address) -> None:
    """A spoofed header from an untrusted peer buys no fresh buckets."""
    c = from_address()
    spoofed = (f"198.51.100.{i}" for i in itertools.count())
    burst_then_429(lambda: token_with_forwarded_for(c, next(spoofed)), burst=10, rate=5)


def test_a_client_cannot_spoof_past_a_trusted_proxy(from_address) -> None:
    """The proxy appends the address it saw; what the client wrote to the left of it is not believed."""
    proxy = from_address(TRUSTED_PROXY)
    spoofed = (f"198.51.100.{i}, 203.0.113.20" for i in itertools.count())
    burst_then_429(lambda: token_with_forwarded_for(proxy, next(spoofed)), burst=10, rate=5)


def test_preflights_are_not_rate_limited(from_address) -> None:
    """Only the token and join buckets exist: a browser's preflights never spend them."""
    c = from_address()
    preflights = [
        c.http.options(
            c.base_url + "/request_token",
            headers={"Origin": "http://localhost:8060", "Access-Control-Request-Method": "POST"},
            timeout=10,
        ).status_code
        for _ in range(30)
    ]
    assert preflights == [204] * 30
    burst_then_429(lambda: c.post("/request_token"), burst=10, rate=5)
