"""The operator's side: admin auth, the admin page, and chaos (disconnects and tick-loop stalls).

Chaos acts on every session of a backend, so this module runs its own backend (two game
servers) and waits, after each test, until every session it opened is gone.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from loadtest.backend import BackendProcess
from tests.client import GameClient, next_of_type, ticks, wait_until
from tests.conftest import client_of

pytestmark = [pytest.mark.backend("--game-servers", "2"), pytest.mark.xdist_group("chaos")]


@pytest.fixture
def c(backend: BackendProcess) -> Iterator[GameClient]:
    c = client_of(backend)
    yield c
    assert wait_until(lambda: c.admin_stats()["players"] == 0, timeout=10), "sessions left behind"


def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the server closes the socket; return the close code it sent."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            ws.recv(timeout=left)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        pass
    pytest.fail(f"the server did not close the socket within {timeout} s")


def fate(ws: ClientConnection, window: float = 0.25) -> int | str:
    """The close code if the server drops the socket within ``window`` seconds, else "up"."""
    deadline = time.monotonic() + window
    try:
        while (left := deadline - time.monotonic()) > 0:
            ws.recv(timeout=left)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else "closed without a code"
    except TimeoutError:
        pass
    return "up"


def players(c: GameClient, stack: ExitStack, count: int) -> list[ClientConnection]:
    """``count`` players in one room, each past its welcome."""
    _, first = c.ticket("p0", {"create": True})
    joined = [first] + [c.ticket(f"p{i}", {"room": first["room"]})[1] for i in range(1, count)]
    sockets = [stack.enter_context(c.connect(j["ticket"])) for j in joined]
    for ws in sockets:
        next_of_type(ws, "welcome")
    return sockets


# -- admin auth and page --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/admin"), ("GET", "/admin/api/stats"), ("POST", "/admin/api/chaos")]
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token-123", "Basic {token}", "{token}", "Bearer"], ids=str
)
def test_admin_needs_the_admin_token(c: GameClient, method: str, path: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization.format(token=c.admin_token)} if authorization else {}
    with ExitStack() as stack:
        (ws,) = players(c, stack, 1)
        r = c.http.request(method, c.base_url + path, headers=headers, json={"action": "disconnect"}, timeout=10)
        assert r.status_code == 401
        assert r.json()["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert next_of_type(ws, "tick"), "an unauthorised chaos order dropped no one"


def test_admin_page_lists_rooms_and_players_escaped(c: GameClient) -> None:
    token = c.token("<b>Zed</b>")
    joined = c.join(token, {"create": True})
    with c.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        r = c.get("/admin", headers=c.admin_headers())
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert joined["room"] in r.text
        assert "&lt;b&gt;Zed&lt;/b&gt;" in r.text and "<b>Zed</b>" not in r.text
        stats = c.admin_stats()
        (room,) = [room for room in stats["rooms"] if room["code"] == joined["room"]]
        assert [p["name"] for p in room["players"]] == ["<b>Zed</b>"]
        assert room["game_server"] in {gs["index"] for gs in stats["game_servers"]}
        assert stats["players"] == 1


# -- chaos: disconnect --------------------------------------------------------------------------


def test_disconnect_everyone_with_close_code_1012(c: GameClient) -> None:
    before_closed = c.metric("gamebackend_ws_connections_closed_total", by="chaos")
    before_drops = c.metric("gamebackend_chaos_disconnects_total")
    with ExitStack() as stack:
        sockets = players(c, stack, 3)
        answer = c.chaos(action="disconnect", fraction=1.0, close_code=1012)
        assert answer == {"action": "disconnect", "dropped": 3, "of": 3, "close_code": 1012}
        assert [close_code(ws) for ws in sockets] == [1012] * 3
    assert c.metric("gamebackend_chaos_disconnects_total") - before_drops == 3
    assert wait_until(lambda: c.metric("gamebackend_ws_connections_closed_total", by="chaos") - before_closed == 3)


def test_disconnect_drops_the_given_fraction_and_spares_the_rest(c: GameClient) -> None:
    with ExitStack() as stack:
        sockets = players(c, stack, 4)
        before = c.metric("gamebackend_ws_connections_closed_total", by="chaos")
        answer = c.chaos(action="disconnect", fraction=0.5, close_code=4000)
        assert (answer["dropped"], answer["of"]) == (2, 4)
        # Once the server has counted both closes, their close frames are already on the wire.
        assert wait_until(lambda: c.metric("gamebackend_ws_connections_closed_total", by="chaos") - before == 2)
        outcomes = [fate(ws) for ws in sockets]
        assert sorted(outcomes, key=str) == [4000, 4000, "up", "up"]


def test_a_dropped_player_can_come_back_with_a_new_ticket(c: GameClient) -> None:
    token = c.token("phoenix")
    joined = c.join(token, {"create": True})
    with c.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        c.chaos(action="disconnect", fraction=1.0)
        assert close_code(ws) == 1012, "1012 (service restart) is the default"
    rejoined = c.join(token, {"room": joined["room"]})
    with c.connect(rejoined["ticket"]) as ws:
        assert next_of_type(ws, "welcome")["room"] == joined["room"]


def test_fraction_zero_drops_no_one(c: GameClient) -> None:
    with ExitStack() as stack:
        (ws,) = players(c, stack, 1)
        assert c.chaos(action="disconnect", fraction=0)["dropped"] == 0
        ticks(ws, 10)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"action": "explode"},
        {"action": "disconnect", "fraction": 1.5},
        {"action": "disconnect", "fraction": -0.1},
        {"action": "disconnect", "fraction": "all"},
        {"action": "disconnect", "fraction": True},
        {"action": "disconnect", "close_code": 1006},
        {"action": "disconnect", "close_code": 1005},
        {"action": "disconnect", "close_code": 999},
        {"action": "disconnect", "close_code": 5000},
        {"action": "disconnect", "close_code": "1012"},
        {"action": "stall"},
        {"action": "stall", "seconds": 0},
        {"action": "stall", "seconds": -1},
        {"action": "stall", "seconds": 61},
        {"action": "stall", "seconds": "2"},
        {"action": "stall", "seconds": True},
        [],
    ],
    ids=str,
)
def test_bad_chaos_orders_are_400_and_change_nothing(c: GameClient, body: object) -> None:
    with ExitStack() as stack:
        (ws,) = players(c, stack, 1)
        r = c.post("/admin/api/chaos", json=body, headers=c.admin_headers())
        assert r.status_code == 400
        assert r.json()["error"]
        got = ticks(ws, 6, timeout=2)
        assert max(b["ts"] - a["ts"] for a, b in itertools.pairwise(got)) < 0.5, "no stall"


# -- chaos: stall --------------------------------------------------------------------------------


def test_stall_freezes_ticks_then_resumes_with_a_gap(c: GameClient) -> None:
    before = c.metric("gamebackend_chaos_stalls_total")
    with ExitStack() as stack:
        (ws,) = players(c, stack, 1)
        got = ticks(ws, 5)
        answer = c.chaos(action="stall", seconds=1.0)
        assert answer == {"action": "stall", "seconds": 1.0, "game_servers": 2}
        got += ticks(ws, 90, timeout=6)
        gaps = [(b["ts"] - a["ts"], b["tick"] - a["tick"]) for a, b in itertools.pairwise(got)]
        longest, step = max(gaps)
        assert 0.9 <= longest <= 1.5, "the loop stood still for the stall, then went on"
        assert step == 1, "no tick number is skipped: the world resumes where it stopped"
        assert all(s == 1 for _, s in gaps)
        resumed = next(b["ts"] for a, b in itertools.pairwise(got) if b["ts"] - a["ts"] == longest)
        after = [t for t in got if resumed <= t["ts"] < resumed + 0.5]
        assert len(after) <= 0.5 * 60 + 3, "no burst of catch-up ticks after the stall"
    assert c.metric("gamebackend_chaos_stalls_total") - before == 1
