"""The backend's network defects caught by the relay's own evidence, with real sockets (no Locust).

A player's HTTP and WebSocket go through a relay route as they do in a run; the relay's fault
records say when the server closed a half-open connection, and a rejoin to a full room says
whether a dropped player's seat was given back.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from websockets.sync.client import connect

from loadtest.collectors.aggregates import merge_records
from loadtest.collectors.base import Context
from loadtest.collectors.network import NetworkCollector, NetworkReducer
from loadtest.runtime.relay import Conditions, Relay, RelayAdapter
from tests.client import next_of_type, wait_until
from tests.conftest import client_of


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    made: list[Relay] = []
    yield made
    for relay in made:
        relay.stop()


def _relay(relays: list[Relay]) -> Relay:
    relay = Relay(seed=2)
    relays.append(relay)
    return relay


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _session_via(route: tuple[str, int], url: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", RelayAdapter(route, _target(url)[0]))
    return session


def test_source_addresses_reach_the_per_ip_limiter_through_the_relay(start_backend, relays) -> None:  # type: ignore[no-untyped-def]
    backend = start_backend("--token-rate", "0.01", "--token-burst", "3", generous=False)
    relay = _relay(relays)
    first = _session_via(relay.route(_target(backend.url), source="127.0.0.21"), backend.url)
    second = _session_via(relay.route(_target(backend.url), source="127.0.0.22"), backend.url)
    codes = [first.post(backend.url + "/request_token", json={"name": "a"}, timeout=5).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # one address's burst, spent through the relay
    assert second.post(backend.url + "/request_token", json={"name": "b"}, timeout=5).status_code == 200


def _server_close_after(backend, relays: list[Relay], hold: float) -> tuple[dict[str, float | None], float]:  # type: ignore[no-untyped-def]
    """One player frozen and one half-open at once, each through its own relay: when the server
    closed each, seconds from the fault's start (None: not while the fault lasted), and the
    server's player gauge then."""
    client = client_of(backend)
    faulted: dict[str, Relay] = {}
    with contextlib.ExitStack() as stack:
        for kind in ("freeze", "blackhole"):
            _, grant = client.ticket(kind)
            relay = _relay(relays)
            sock = socket.create_connection(relay.route(_target(backend.url)), timeout=5)
            ws = stack.enter_context(
                connect(
                    f"{client.ws_url}/connect?ticket={grant['ticket']}", sock=sock, open_timeout=5, close_timeout=0.5
                )
            )
            next_of_type(ws, "welcome")
            faulted[kind] = relay
        for kind, relay in faulted.items():
            assert relay.storm(kind, 1.0, seconds=hold) == 1

        def closed(relay: Relay) -> bool:
            return bool(relay.stats.records) and relay.stats.records[0].server_closed_after_s is not None

        wait_until(lambda: all(closed(r) for r in faulted.values()), hold - 0.5)
        players = client.metric("gamebackend_players")
        return {kind: r.stats.records[0].server_closed_after_s for kind, r in faulted.items()}, players


def test_the_heartbeat_drops_frozen_and_half_open_players(start_backend, relays) -> None:  # type: ignore[no-untyped-def]
    backend = start_backend("--heartbeat", "1")
    closes, players = _server_close_after(backend, relays, hold=3.5)
    assert players == 0
    for kind, closed_after in closes.items():
        # A ping after 1 s of silence, then half a heartbeat for the pong that never comes.
        assert closed_after is not None and 0.9 <= closed_after <= 3.0, (kind, closed_after)


def test_no_heartbeat_keeps_frozen_and_half_open_players(start_backend, relays) -> None:  # type: ignore[no-untyped-def]
    backend = start_backend("--heartbeat", "1", defects=("no-heartbeat",))
    closes, players = _server_close_after(backend, relays, hold=3.5)
    assert closes == {"freeze": None, "blackhole": None}
    assert players == 2  # the ghosts still count as players


def _rejoin_status(backend) -> int:  # type: ignore[no-untyped-def]
    client = client_of(backend)
    _, grant_a = client.ticket("a", {"create": True})
    token_b = client.token("b")
    grant_b = client.join(token_b, {"room": grant_a["room"]})
    with client.connect(grant_a["ticket"]) as ws_a:
        next_of_type(ws_a, "welcome")
        with client.connect(grant_b["ticket"]) as ws_b:
            next_of_type(ws_b, "welcome")
        # b dropped; wait until the matchmaker saw it go
        assert wait_until(lambda: client.metric("gamebackend_players") == 1, 5)
        return client.join_response(token_b, {"room": grant_a["room"]}).status_code


def test_a_dropped_players_seat_is_given_back(start_backend) -> None:  # type: ignore[no-untyped-def]
    assert _rejoin_status(start_backend("--room-capacity", "2")) == 200


def test_seat_leak_refuses_the_rejoin_as_full(start_backend) -> None:  # type: ignore[no-untyped-def]
    assert _rejoin_status(start_backend("--room-capacity", "2", defects=("seat-leak",))) == 409


def test_message_rates_tell_clean_links_from_slow_ones(start_backend, relays) -> None:  # type: ignore[no-untyped-def]
    backend = start_backend("--tick-rate", "60")
    client = client_of(backend)
    relay = _relay(relays)
    with contextlib.ExitStack() as stack:
        for name, conditions in (("clean", Conditions()), ("slow", Conditions(bandwidth_kb_s=0.5))):
            _, grant = client.ticket(name)
            sock = socket.create_connection(relay.route(_target(backend.url), conditions=conditions), timeout=5)
            ws = stack.enter_context(
                connect(
                    f"{client.ws_url}/connect?ticket={grant['ticket']}", sock=sock, open_timeout=5, close_timeout=0.5
                )
            )
            if name == "clean":
                next_of_type(ws, "welcome")
        collector = NetworkCollector()
        assert wait_until(lambda: len(relay.stats.snapshot()["sessions"]) == 2, 5)
        collector.sample(relay.stats.snapshot(), second=1, now=0.0)
        time.sleep(2.0)
        collector.sample(relay.stats.snapshot(), second=2, now=2.0)
    reducer = NetworkReducer()
    for second, bucket in sorted(merge_records(collector.agg.drain("w"))["network"].items()):
        reducer.add(second, bucket, Context(reducers={}))
    rates = reducer.summarise(Context(reducers={}))["network"]["message_rate"]
    # The relay counts what it delivered: a clean link carries the room's 60 Hz, a 0.5 KB/s one
    # cannot (a tick is about 110 bytes: 4-5 a second).
    assert 50 <= rates["clean_p50_hz"] <= 66, rates
    assert rates["slow_p50_hz"] <= 8, rates
    assert rates["slow_session_seconds"] == 1


def test_https_passes_through_the_relay_end_to_end(start_backend, relays, ca_pem) -> None:  # type: ignore[no-untyped-def]
    backend = start_backend(tls=True)
    relay = _relay(relays)
    route = relay.route(_target(backend.url))
    session = requests.Session()
    session.mount("https://", RelayAdapter(route, _target(backend.url)[0]))
    # The relay only carries bytes: the handshake is the target's, its certificate checked by the player.
    reply = session.post(backend.url + "/request_token", json={"name": "tls"}, timeout=5, verify=str(ca_pem))
    assert reply.status_code == 200 and reply.json()["token"]
    assert relay.stats.connections == 1
