"""Fuzz the reference backend's HTTP and WebSocket surfaces: no input earns a 500 or a non-JSON error.

Examples are bounded, and derandomized when ``CI`` is set so a CI failure reproduces; locally each
run explores new inputs. After every test the backend must still answer ``/healthz``.
"""

from __future__ import annotations

import json
import os

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from loadtest.backend import BackendProcess
from tests.conftest import GENEROUS_LIMITS

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PATHS = [
    "/request_token",
    "/join",
    "/connect",
    "/metrics",
    "/healthz",
    "/admin",
    "/admin/api/stats",
    "/admin/api/chaos",
    "/",
    "/%ff",
    "/admin/",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Names and fields the protocol knows, with values of any type: the likeliest to reach code.
known_objects = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "room": json_values,
        "create": json_values,
        "action": st.sampled_from(["disconnect", "stall"]) | json_values,
        "fraction": json_values,
        "close_code": json_values,
        "seconds": st.floats(allow_nan=True) | st.integers() | json_values,
    },
)
# What a client can put in a header value at all (no CR, LF or NUL, no leading whitespace).
header_text = st.binary(max_size=40).filter(lambda b: not set(b) & {0, 10, 13}).map(lambda b: b.lstrip())


def _header_bytes(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return bytes(b for b in raw if b not in (0, 10, 13)).lstrip()


bearers = st.text(max_size=20).map(lambda t: _header_bytes("Bearer " + t))


def _body(value: object) -> bytes:
    try:
        return json.dumps(value).encode()
    except ValueError:
        return b"{}"


bodies = st.one_of(
    known_objects.map(_body),
    json_values.map(_body),
    st.binary(max_size=200),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.just(b'{"name": "\\ud800x"}'),
    st.just(b'{"seconds": 1e999}'),
)


@pytest.fixture(scope="module")
def backend():
    with BackendProcess(args=("--game-servers", "1", *GENEROUS_LIMITS)) as b:
        yield b


def _assert_sane(r: requests.Response) -> None:
    assert r.status_code < 500 or r.status_code in (502, 503), (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
        body = r.json()
        assert isinstance(body.get("error"), str)
        assert "Traceback" not in r.text


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    path=st.sampled_from(PATHS),
    body=bodies,
    authorization=st.none()
    | header_text
    | st.text(max_size=20).map(
        lambda t: (
            ("Bearer " + t).encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
        )
    ),
    content_type=st.sampled_from([None, b"application/json", b"text/plain", b"application/json; charset=latin-1"]),
    origin=st.none() | header_text,
    forwarded=st.none() | header_text,
)
def test_http_never_answers_500(backend, method, path, body, authorization, content_type, origin, forwarded):
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    if content_type is not None:
        headers["Content-Type"] = content_type
    if origin is not None:
        headers["Origin"] = origin
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    r = requests.request(method, backend.url + path, data=body, headers=headers, timeout=10)
    _assert_sane(r)


@FUZZ
@given(body=bodies, authorization=bearers)
def test_admin_api_with_the_right_token_never_answers_500(backend, body, authorization):
    headers = {"Authorization": f"Bearer {backend.admin_token}", "Content-Type": "application/json"}
    r = requests.post(backend.url + "/admin/api/chaos", data=body, headers=headers, timeout=10)
    _assert_sane(r)
    # Chaos "stall" with a valid number really stalls: keep it short for the next examples.
    r = requests.get(backend.url + "/admin/api/stats", headers={"Authorization": authorization}, timeout=10)
    _assert_sane(r)


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 40))
@given(
    ticket=st.text(max_size=60),
    frames=st.lists(st.one_of(json_values.map(json.dumps), st.text(max_size=50), st.binary(max_size=50)), max_size=6),
)
def test_websocket_never_breaks_the_backend(backend, ticket, frames):
    ws_url = backend.url.replace("http", "ws", 1)
    try:
        with connect(f"{ws_url}/connect?ticket={requests.utils.quote(ticket)}", open_timeout=5) as ws:
            ws.recv(timeout=5)
    except InvalidStatus as exc:
        assert exc.response.status_code < 500, exc.response.status_code
    token = requests.post(backend.url + "/request_token", json={}, timeout=10).json()["token"]
    granted = requests.post(backend.url + "/join", json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    with connect(f"{ws_url}/connect?ticket={granted.json()['ticket']}", open_timeout=5) as ws:
        try:
            for frame in frames:
                ws.send(frame)
            ws.recv(timeout=5)
        except (ConnectionClosed, TimeoutError):
            pass  # the server may close a session that sends garbage; it must not fall over


def test_healthz_answers_after_the_fuzzing(backend):
    assert requests.get(backend.url + "/healthz", timeout=5).json()["status"] == "ok"
    metrics = requests.get(backend.url + "/metrics", timeout=5).text
    assert 'status="500"' not in metrics
