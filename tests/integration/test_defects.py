"""Each defect turns off exactly one protection, and nothing else.

One backend per row (the correct backend, then one per defect) runs every probe; each probe
says whether its protection held. A row passes only if the broken set is exactly its own defect:
that proves the protection holds on a correct backend, fails under its defect, and that no
defect quietly breaks a neighbour. ``slow-tick`` breaks the tick rate of a full room, measured in
``test_ticks.py``; here it must leave every other protection intact.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidStatus

from loadtest.backend import DEFECTS, BackendProcess
from tests.client import GameClient, forge, next_of_type, player_claims, session_from
from tests.conftest import client_of

SECRET = "defect-matrix-secret-0123456789abcdef"
TICKET_TTL = 1.0
RACERS = 8
#: A ticket that is never spent cannot be spent exactly once by racing sockets either: under
#: ticket-replay every racer wins. The converse does not hold (ticket-race still refuses a replay).
IMPLIED = {"ticket-replay": {"ticket-race"}}


# -- probes: each returns True when its protection held -------------------------------------------


def replayed_ticket_is_refused(c: GameClient) -> bool:
    _, joined = c.ticket("replayer")
    with c.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        status, body = c.refusal(joined["ticket"])
    if status == 101:
        return False
    assert (status, body["reason"]) == (403, "used")
    return True


def race_for_one_ticket(c: GameClient, ticket: str, racers: int = RACERS) -> list[int]:
    """Open ``racers`` sockets that present one ticket at the same moment; return their statuses.

    The TCP connections are made first and the threads meet at a barrier, so the upgrade requests
    reach the server within a few milliseconds of each other. Winners hold their socket open
    until every racer has its answer, so no early close can make room for a late one.
    """
    parts = urlsplit(c.base_url)
    sockets = [socket.create_connection((parts.hostname, parts.port), timeout=10) for _ in range(racers)]
    start, finish = threading.Barrier(racers), threading.Barrier(racers)

    def attempt(sock: socket.socket) -> int:
        start.wait(timeout=10)
        try:
            with c.connect(ticket, sock=sock):
                finish.wait(timeout=10)
                return 101
        except InvalidStatus as exc:
            sock.close()
            finish.wait(timeout=10)
            return exc.response.status_code

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(attempt, sockets))


def racing_sockets_have_one_winner(c: GameClient) -> bool:
    _, joined = c.ticket("racer")
    statuses = race_for_one_ticket(c, joined["ticket"])
    winners = statuses.count(101)
    assert winners >= 1, statuses
    assert statuses.count(403) == RACERS - winners, statuses
    return winners == 1


def expired_ticket_is_refused(c: GameClient, ticket: str) -> bool:
    status, body = c.refusal(ticket)
    if status == 101:
        return False
    assert (status, body["reason"]) == (403, "expired")
    return True


def unsigned_token_is_refused(c: GameClient) -> bool:
    token = forge(player_claims(sub="p_unsigned"), key=None, algorithm="none")
    r = c.join_response(token)
    if r.status_code == 200:
        return False
    assert (r.status_code, r.json()["reason"]) == (401, "alg_not_allowed")
    return True


def expired_token_is_refused(c: GameClient) -> bool:
    now = int(time.time())
    token = forge(player_claims(sub="p_expired", iat=now - 7200, exp=now - 3600), key=SECRET)
    r = c.join_response(token)
    if r.status_code == 200:
        return False
    assert (r.status_code, r.json()["reason"]) == (401, "expired")
    return True


def floods_are_rate_limited(backend: BackendProcess) -> bool:
    """30 token requests from one fresh address, then 10 joins by one player: any 429 at all?"""
    flooder = GameClient(backend.url, session=session_from("127.0.0.9"))
    tokens = [flooder.post("/request_token", json={"name": "flood"}) for _ in range(30)]
    token = next(r.json()["token"] for r in tokens if r.status_code == 200)
    joins = [flooder.join_response(token) for _ in range(10)]
    statuses = {r.status_code for r in tokens + joins}
    assert statuses <= {200, 429}, statuses
    return 429 in {r.status_code for r in tokens} and 429 in {r.status_code for r in joins}


# -- the matrix -----------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", [None, *sorted(DEFECTS)], ids=lambda d: d or "correct")
def test_each_defect_breaks_exactly_its_own_protection(start_backend, defect: str | None) -> None:
    backend = start_backend(
        "--game-servers", "1", "--ticket-ttl", str(TICKET_TTL), "--jwt-secret", SECRET,
        defects=(defect,) if defect else (),
        generous=False,
    )  # fmt: skip
    c = client_of(backend)
    _, stale = c.ticket("late")
    issued = time.monotonic()

    held = {
        "ticket-replay": replayed_ticket_is_refused(c),
        "ticket-race": racing_sockets_have_one_winner(c),
        "jwt-alg-none": unsigned_token_is_refused(c),
        "jwt-expired-ok": expired_token_is_refused(c),
        "no-rate-limit": floods_are_rate_limited(backend),
    }
    time.sleep(max(0.0, issued + TICKET_TTL + 0.3 - time.monotonic()))
    held["ticket-no-expiry"] = expired_ticket_is_refused(c, stale["ticket"])

    broken = {rule for rule, ok in held.items() if not ok}
    assert broken == ({defect} & held.keys()) | IMPLIED.get(defect, set())
    for name in DEFECTS:
        assert c.metric("gamebackend_defect", defect=name) == (1.0 if name == defect else 0.0)


def test_racing_sockets_lose_with_used(client: GameClient) -> None:
    """On a correct backend the losers of a race are told why: the ticket was used."""
    _, joined = client.ticket("racer")
    statuses = race_for_one_ticket(client, joined["ticket"])
    assert sorted(statuses) == [101] + [403] * (RACERS - 1)
    assert client.refusal(joined["ticket"]) == (403, {"error": "ticket refused: used", "reason": "used"})


def test_replayed_ticket_works_again_under_the_defect(start_backend) -> None:
    """ticket-replay: the same ticket opens a second game session, not just a handshake."""
    c = client_of(start_backend("--game-servers", "1", defects=("ticket-replay",)))
    _, joined = c.ticket("twice")
    for _ in range(2):
        with c.connect(joined["ticket"]) as ws:
            assert next_of_type(ws, "welcome")["room"] == joined["room"]
            next_of_type(ws, "tick")
