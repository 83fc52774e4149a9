"""The protocol of docs/protocol.md, rule by rule, against a real backend process."""

from __future__ import annotations

import itertools

import jwt
import pytest

from tests.client import GameClient, next_of_type, receive_json, ticks

ROOM_ALPHABET = set("ABCDEFGHJKMNPQRSTUVWXYZ")


def test_request_token_issues_a_pinned_hs256_jwt(client: GameClient) -> None:
    r = client.post("/request_token", json={"name": "Ada"})
    assert r.status_code == 200
    body = r.json()
    header = jwt.get_unverified_header(body["token"])
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert {"sub", "name", "iat", "exp", "aud", "jti"} <= claims.keys()
    assert claims["aud"] == "matchmaker"
    assert claims["sub"] == body["player_id"]
    assert claims["name"] == "Ada"
    assert claims["exp"] - claims["iat"] == body["expires_in"]


def test_request_token_body_is_optional(client: GameClient) -> None:
    assert client.post("/request_token").status_code == 200


def test_quick_join_then_connect_gets_welcome_lobby_and_ticks(client: GameClient) -> None:
    token, joined = client.ticket("Bo")
    assert set(joined) >= {"ticket", "room", "expires_in", "connect"}
    assert joined["connect"] == "/connect"
    assert len(joined["room"]) == 4 and set(joined["room"]) <= ROOM_ALPHABET
    assert len(joined["ticket"]) >= 22  # >= 128 bits, url-safe base64
    with client.connect(joined["ticket"]) as ws:
        welcome = receive_json(ws)
        assert welcome["type"] == "welcome"
        assert welcome["room"] == joined["room"]
        assert welcome["tick_rate"] == 60
        assert welcome["player_id"] == jwt.decode(token, options={"verify_signature": False})["sub"]
        lobby = next_of_type(ws, "lobby")
        assert welcome["player_id"] in [p["id"] for p in lobby["players"]]
        got = ticks(ws, 10)
        numbers = [t["tick"] for t in got]
        assert numbers == list(range(numbers[0], numbers[0] + 10)), "tick numbers rise by exactly 1"
        assert all(b["ts"] > a["ts"] for a, b in itertools.pairwise(got))
        assert {"tick", "ts", "ack", "players", "state"} <= got[-1].keys()


def test_input_is_acknowledged_in_ticks(client: GameClient) -> None:
    _, joined = client.ticket()
    with client.connect(joined["ticket"]) as ws:
        ws.send('{"type": "input", "seq": 7, "x": 1.0, "y": 0.0}')
        for _ in range(60):
            tick = next_of_type(ws, "tick")
            if tick["ack"] == 7:
                break
        else:
            pytest.fail("input #7 was never acknowledged")
        x0 = tick["state"]["x"]
        later = ticks(ws, 30)[-1]
        assert later["state"]["x"] > x0, "the player moved in the direction of its input"


def test_create_and_join_by_code_share_a_room_and_lobby(client: GameClient) -> None:
    _, created = client.ticket("host", {"create": True})
    code = created["room"]
    _, by_code = client.ticket("guest", {"room": code.lower()})
    assert by_code["room"] == code
    with client.connect(created["ticket"]) as host:
        next_of_type(host, "welcome")
        with client.connect(by_code["ticket"]) as guest:
            next_of_type(guest, "welcome")
            for _ in range(5):
                lobby = next_of_type(host, "lobby")
                if len(lobby["players"]) == 2:
                    break
            assert sorted(p["name"] for p in lobby["players"]) == ["guest", "host"]
            assert next_of_type(guest, "tick")["players"] == 2


def test_unknown_room_is_404(client: GameClient) -> None:
    r = client.join_response(client.token(), {"room": "ZZZZ"})
    assert r.status_code == 404
    assert r.json()["error"]


def test_full_room_is_409(start_backend) -> None:
    c = GameClient(start_backend("--room-capacity", "2").url)
    _, first = c.ticket("a", {"create": True})
    c.ticket("b", {"room": first["room"]})
    r = c.join_response(c.token("c"), {"room": first["room"]})
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("Bearer not-a-jwt", "malformed"),
        ("Basic dXNlcjpwYXNz", "missing"),
    ],
)
def test_join_without_a_valid_token_is_401(client: GameClient, header: str | None, reason: str) -> None:
    headers = {"Authorization": header} if header else {}
    r = client.post("/join", json={}, headers=headers)
    assert r.status_code == 401
    assert r.json()["reason"] == reason


def test_ticket_is_single_use(client: GameClient) -> None:
    _, joined = client.ticket()
    with client.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        assert client.refusal(joined["ticket"]) == (403, {"error": "ticket refused: used", "reason": "used"})


def test_unknown_ticket_is_refused_before_upgrade(client: GameClient) -> None:
    status, body = client.refusal("x" * 32)
    assert status == 403
    assert body["reason"] == "unknown"
