"""Bad input of every kind gets a 4xx JSON error (never a 500 or a traceback), and service goes on.

HTTP: malformed and oversized bodies, wrong content types and types of fields, garbage tickets,
unknown paths and methods. WebSocket: messages that are not valid input are ignored and counted
(``gamebackend_invalid_inputs_total``) while the session stays up; frames over 4 KiB are closed
with 1009.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import quote

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from loadtest.backend import BackendProcess
from tests.client import GameClient, next_of_type, ticks, wait_until

JSON = {"Content-Type": "application/json"}
BODY_CAP = 16 * 1024
FRAME_CAP = 4 * 1024

#: (what is wrong, path, requests kwargs, expected status). ``/join`` cases get a valid token.
HTTP_CASES = [
    ("malformed JSON", "/request_token", {"data": "{not json", "headers": JSON}, 400),
    ("JSON array", "/request_token", {"data": "[1, 2]", "headers": JSON}, 400),
    ("JSON string", "/request_token", {"data": '"Ada"', "headers": JSON}, 400),
    ("name not a string", "/request_token", {"json": {"name": 5}}, 400),
    ("name null", "/request_token", {"json": {"name": None}}, 400),
    ("form body", "/request_token", {"data": {"name": "Ada"}}, 415),
    ("text/plain body", "/request_token", {"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415),
    ("not UTF-8", "/request_token", {"data": b'{"name": "\xff\xfe"}', "headers": JSON}, 400),
    ("nested 15000 deep", "/request_token", {"data": "[" * 15000, "headers": JSON}, 400),
    ("bogus gzip", "/request_token", {"data": b"{}", "headers": {**JSON, "Content-Encoding": "gzip"}}, 400),
    ("oversized", "/request_token", {"data": " " * (BODY_CAP + 1), "headers": JSON}, 413),
    ("oversized JSON", "/request_token", {"json": {"name": "x" * BODY_CAP}}, 413),
    ("malformed JSON", "/join", {"data": "{oops", "headers": JSON}, 400),
    ("JSON array", "/join", {"data": "[]", "headers": JSON}, 400),
    ("room not a string", "/join", {"json": {"room": 7}}, 400),
    ("room is a list", "/join", {"json": {"room": ["ABCD"]}}, 400),
    ("create not a bool", "/join", {"json": {"create": "yes"}}, 400),
    ("room and create", "/join", {"json": {"room": "ABCD", "create": True}}, 400),
    ("text/plain body", "/join", {"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415),
    ("nested 15000 deep", "/join", {"data": '{"room": ' + "[" * 15000, "headers": JSON}, 400),
    ("oversized", "/join", {"json": {"room": "x" * BODY_CAP}}, 413),
    ("huge room code", "/join", {"json": {"room": "Q" * 8000}}, 404),
    ("empty room code", "/join", {"json": {"room": ""}}, 404),
]


def assert_json_error(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text
    return body


def assert_no_unhandled_errors(backend: BackendProcess) -> None:
    """The matchmaker logs "unhandled error on ..." whenever it had to answer 500."""
    assert "unhandled error on" not in backend.stderr_text()


@pytest.mark.parametrize(
    ("problem", "path", "kwargs", "status"), HTTP_CASES, ids=[f"{c[1]} {c[0]}" for c in HTTP_CASES]
)
def test_bad_body_is_a_4xx_json_error(
    client: GameClient, shared_backend: BackendProcess, problem: str, path: str, kwargs: dict, status: int
) -> None:
    kwargs = dict(kwargs)
    headers = dict(kwargs.pop("headers", {}))
    if path == "/join":
        headers["Authorization"] = f"Bearer {client.token()}"
    assert_json_error(client.post(path, headers=headers, **kwargs), status)
    assert_no_unhandled_errors(shared_backend)


@pytest.mark.parametrize("path", ["/request_token", "/join"])
def test_a_body_of_exactly_16_kib_is_accepted(client: GameClient, path: str) -> None:
    prefix = '{"name": "Ada"' if path == "/request_token" else '{"create": true'
    body = prefix + " " * (BODY_CAP - len(prefix) - 1) + "}"
    assert len(body) == BODY_CAP
    headers = {**JSON, "Authorization": f"Bearer {client.token()}"}
    assert client.post(path, data=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("POST", "/admin/nope", 404),
        ("GET", "/join", 405),
        ("PUT", "/join", 405),
        ("GET", "/request_token", 405),
        ("DELETE", "/request_token", 405),
        ("POST", "/metrics", 405),
        ("POST", "/connect", 405),
        ("GET", "/connect?ticket=abc", 400),
    ],
)
def test_wrong_paths_and_methods_are_4xx_json(
    client: GameClient, shared_backend: BackendProcess, method: str, path: str, status: int
) -> None:
    r = client.http.request(method, client.base_url + path, timeout=10)
    body = assert_json_error(r, status)
    if status == 405:
        assert r.headers["Allow"], "a 405 says which methods would do"
    if path.startswith("/connect?"):
        assert "upgrade" in body["error"].lower()
    assert_no_unhandled_errors(shared_backend)


@pytest.mark.parametrize(
    "ticket",
    [
        "",
        "x",
        "x" * 4000,
        "../../etc/passwd",
        "\x00",
        "' OR 1=1 --",
        "ticket😀",
        secrets.token_urlsafe(24),  # the right shape, never issued
    ],
    ids=["empty", "short", "long", "path", "nul", "sql", "emoji", "well-formed"],
)
def test_garbage_ticket_is_refused_unknown_before_upgrade(client: GameClient, ticket: str) -> None:
    status, body = client.refusal(quote(ticket, safe=""))
    assert (status, body["reason"]) == (403, "unknown")


def test_connect_without_a_ticket_parameter_is_refused(client: GameClient) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{client.ws_url}/connect", open_timeout=10)
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["reason"] == "unknown"


def test_request_line_too_long_for_the_parser_is_a_4xx_and_service_goes_on(
    client: GameClient, shared_backend: BackendProcess
) -> None:
    """Refused by aiohttp's HTTP parser before any handler runs: a 400, not a 500 or a traceback,
    in the answer or in the server's log."""
    r = client.get("/connect?ticket=" + "x" * 9000)
    assert 400 <= r.status_code < 500
    assert "Traceback" not in r.text
    assert client.get("/healthz").status_code == 200
    assert wait_until(lambda: "LineTooLong" in shared_backend.stderr_text(), timeout=5), "the refusal is logged"
    assert "Traceback" not in shared_backend.stderr_text()


def test_bad_requests_do_not_disturb_a_session_in_progress(client: GameClient) -> None:
    _, joined = client.ticket("steady")
    with client.connect(joined["ticket"]) as ws:
        before = next_of_type(ws, "tick")["tick"]
        for _, path, kwargs, _ in HTTP_CASES[:12]:
            client.post(path, **kwargs)
        client.get("/connect?ticket=garbage")
        later = ticks(ws, 5)
        assert later[0]["tick"] > before
        assert [t["tick"] for t in later] == list(range(later[0]["tick"], later[0]["tick"] + 5))
    assert client.get("/healthz").json()["status"] == "ok"


# -- WebSocket ---------------------------------------------------------------------------------

INVALID_MESSAGES = [
    "not json",
    "{",
    "[" * 3000,
    "null",
    "[]",
    '"input"',
    '{"type": "chat", "text": "hi"}',
    '{"type": "input"}',
    '{"type": "input", "seq": "1", "x": 0, "y": 0}',
    '{"type": "input", "seq": -1, "x": 0, "y": 0}',
    '{"type": "input", "seq": true, "x": 0, "y": 0}',
    '{"type": "input", "seq": 1.5, "x": 0, "y": 0}',
    '{"type": "input", "seq": 1, "x": "left", "y": 0}',
    '{"type": "input", "seq": 1, "x": NaN, "y": 0}',
    '{"type": "input", "seq": 1, "x": 1e999, "y": 0}',
    '{"type": "input", "seq": 1, "x": 0, "y": null}',
    b"\x00\x01binary",
    json.dumps({"type": "input", "seq": 1, "x": 0, "y": 0}).encode(),  # right content, binary frame
]


def invalid_inputs(c: GameClient) -> float:
    return sum(value for (name, _), value in c.metrics().items() if name == "gamebackend_invalid_inputs_total")


def test_invalid_ws_messages_are_ignored_and_counted(client: GameClient) -> None:
    _, joined = client.ticket("fuzzer")
    with client.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        before = invalid_inputs(client)
        for message in INVALID_MESSAGES:
            ws.send(message)
        ws.send('{"type": "input", "seq": 3, "x": 0.0, "y": 1.0}')
        assert wait_until(lambda: invalid_inputs(client) - before >= len(INVALID_MESSAGES), timeout=5)
        # The session is still up and the one valid input was applied.
        for _ in range(120):
            tick = next_of_type(ws, "tick")
            if tick["ack"] == 3:
                break
        else:
            pytest.fail("the valid input after the invalid ones was never acknowledged")
        assert invalid_inputs(client) - before == len(INVALID_MESSAGES)


@pytest.mark.parametrize("frame", ["x" * (FRAME_CAP + 1), b"\x00" * (FRAME_CAP + 1)], ids=["text", "binary"])
def test_frame_over_4_kib_is_closed_with_1009(client: GameClient, frame: str | bytes) -> None:
    _, joined = client.ticket("bigmouth")
    with client.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(1000):
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    _, other = client.ticket("bystander")
    with client.connect(other["ticket"]) as ws:
        next_of_type(ws, "tick")


def test_frame_of_exactly_4_kib_is_accepted(client: GameClient) -> None:
    _, joined = client.ticket("padded")
    with client.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        message = '{"type": "input", "seq": 9, "x": 1, "y": 0}'
        ws.send(message[:-1] + " " * (FRAME_CAP - len(message)) + "}")
        for _ in range(120):
            if next_of_type(ws, "tick")["ack"] == 9:
                break
        else:
            pytest.fail("a 4096-byte input was not acknowledged")
