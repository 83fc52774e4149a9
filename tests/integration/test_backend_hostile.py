"""The reference backend against clients that send what no client should: never a 500, always JSON.

Each case here was a 500 with a traceback, a plain-text 400, a connection held open forever or
memory that only grew; the fuzzing of the same surfaces is in test_backend_fuzz.py.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from websockets.sync.client import connect

from loadtest.backend import BackendProcess
from loadtest.backend.config import BackendConfig, ConfigError, RateLimit
from loadtest.backend.ratelimit import KeyedLimiter
from tests.conftest import GENEROUS_LIMITS

IDLE = 1.5


@pytest.fixture(scope="module")
def backend():
    with BackendProcess(args=("--game-servers", "1", "--idle-timeout", str(IDLE), *GENEROUS_LIMITS)) as b:
        yield b


def _raw(url: str, payload: bytes, timeout: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _json_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body)


def test_non_ascii_admin_token_is_a_401_not_a_500(backend):
    for path in ("/admin/api/stats", "/admin"):
        r = requests.get(backend.url + path, headers={"Authorization": "Bearer été".encode()}, timeout=5)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "admin token required"


def test_non_ascii_internal_key_on_a_game_server_is_refused(backend):
    admin = {"Authorization": f"Bearer {backend.admin_token}"}
    port = requests.get(backend.url + "/admin/api/stats", headers=admin, timeout=5).json()["game_servers"][0]["port"]
    r = requests.get(f"http://127.0.0.1:{port}/internal/stats", headers={"X-Internal-Key": "clé".encode()}, timeout=5)
    assert r.status_code in (401, 403), r.text


def test_a_name_that_is_not_text_is_refused_and_the_admin_page_keeps_working(backend):
    body = '{"name": "\\ud800x"}'  # valid JSON, a lone surrogate: no UTF-8 page can show it
    r = requests.post(
        backend.url + "/request_token", data=body, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert r.status_code == 400, r.text
    assert "name" in r.json()["error"]
    page = requests.get(backend.url + "/admin", headers={"Authorization": f"Bearer {backend.admin_token}"}, timeout=5)
    assert page.status_code == 200


def test_a_connected_player_with_an_odd_name_leaves_the_admin_page_working(backend):
    token = requests.post(backend.url + "/request_token", json={"name": "<b>é\u202e\U0001f600</b>"}, timeout=5).json()
    ticket = requests.post(
        backend.url + "/join", json={}, headers={"Authorization": f"Bearer {token['token']}"}, timeout=5
    ).json()["ticket"]
    with connect(backend.url.replace("http", "ws", 1) + f"/connect?ticket={ticket}", open_timeout=5) as ws:
        ws.recv(timeout=5)
        page = requests.get(
            backend.url + "/admin", headers={"Authorization": f"Bearer {backend.admin_token}"}, timeout=5
        )
        assert page.status_code == 200
        assert "&lt;b&gt;" in page.text


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",  # header too long
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",  # not a method
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",  # not a version
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # not a target
        b"POST /join HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    ],
)
def test_requests_aiohttp_cannot_parse_are_answered_in_json(backend, request_bytes):
    status, body = _json_body(_raw(backend.url, request_bytes))
    assert 400 <= status < 500
    assert isinstance(body.get("error"), str) and "Traceback" not in body["error"]


def test_a_connection_that_never_sends_a_request_is_closed(backend):
    host, port = backend.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=IDLE * 6) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server; a timeout here would raise
        assert time.monotonic() - started < IDLE * 6


def test_a_request_dripped_forever_is_cut_off(backend):
    host, port = backend.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=IDLE * 6) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + IDLE * 6
        closed = False
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"X-a: b\r\n")
                sock.settimeout(0.3)
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed


def test_healthz_still_answers_after_all_that(backend):
    assert requests.get(backend.url + "/healthz", timeout=5).status_code == 200


def test_idle_rate_limit_buckets_are_forgotten():
    limiter = KeyedLimiter(RateLimit(1000.0, 2))  # a bucket refills in 2 ms
    for i in range(20_000):
        limiter.check(f"player-{i}")
    time.sleep(0.01)
    limiter.check("last")
    assert len(limiter) <= 2
    # Forgetting changes no answer: a busy key is still limited.
    busy = KeyedLimiter(RateLimit(0.001, 2))
    assert [busy.check("k") is None for _ in range(3)] == [True, True, False]


def test_rate_limit_memory_stays_bounded_under_many_keys():
    limiter = KeyedLimiter(RateLimit(5.0, 10))  # the defaults: a bucket refills in 2 s
    for i in range(5_000):
        limiter.check(f"player-{i}")
    assert len(limiter) == 5_000  # all still refilling: none may be forgotten yet


@pytest.mark.parametrize("secret", ["short", "x" * 31, "é" * 15])
def test_a_signing_key_shorter_than_32_bytes_is_refused(secret):
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        BackendConfig(jwt_secret=secret)
    BackendConfig(jwt_secret="é" * 16)  # 32 bytes of UTF-8


def test_serve_refuses_a_short_key_in_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "loadtest", "serve", "--port", "0", "--jwt-secret", "tooshort"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "at least 32 bytes" in r.stderr
    assert "Traceback" not in r.stderr
