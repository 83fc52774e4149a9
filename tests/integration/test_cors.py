"""CORS for the two endpoints a browser build calls: preflights, allowed and refused origins."""

from __future__ import annotations

import pytest
import requests

from tests.client import GameClient
from tests.conftest import client_of

DEFAULT_ORIGINS = ["http://localhost:8060", "http://127.0.0.1:8060"]
PATHS = ["/request_token", "/join"]


def preflight(c: GameClient, path: str, origin: str) -> requests.Response:
    return c.http.options(
        c.base_url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=10,
    )


def assert_grants(r: requests.Response, origin: str) -> None:
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in r.headers["Vary"]


def assert_no_grant(r: requests.Response) -> None:
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Access-Control-Allow-Credentials" not in r.headers


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", DEFAULT_ORIGINS)
def test_preflight_from_a_default_origin_is_204_with_allow_headers(client: GameClient, path: str, origin: str) -> None:
    r = preflight(client, path, origin)
    assert r.status_code == 204
    assert r.content == b""
    assert_grants(r, origin)
    allowed_headers = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert "POST" in {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:8061", "null"])
def test_preflight_from_another_origin_gets_no_allow_header(client: GameClient, path: str, origin: str) -> None:
    r = preflight(client, path, origin)
    assert r.status_code == 204
    assert_no_grant(r)
    assert "Access-Control-Allow-Headers" not in r.headers


def test_actual_requests_carry_the_grant_for_allowed_origins_only(client: GameClient) -> None:
    allowed = client.post("/request_token", json={}, headers={"Origin": DEFAULT_ORIGINS[0]})
    assert allowed.status_code == 200
    assert_grants(allowed, DEFAULT_ORIGINS[0])
    refused = client.post("/request_token", json={}, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 200, "CORS is enforced by the browser; the server just does not grant"
    assert_no_grant(refused)


def test_errors_carry_the_grant_so_a_browser_can_read_them(client: GameClient) -> None:
    r = client.post("/join", json={}, headers={"Origin": DEFAULT_ORIGINS[1]})
    assert r.status_code == 401
    assert_grants(r, DEFAULT_ORIGINS[1])
    assert r.json()["reason"] == "missing"


def test_other_endpoints_answer_no_preflight(client: GameClient) -> None:
    r = preflight(client, "/metrics", DEFAULT_ORIGINS[0])
    assert r.status_code == 405
    assert_no_grant(r)


def test_configured_origin_replaces_the_defaults(start_backend) -> None:
    c = client_of(start_backend("--game-servers", "1", "--cors-origin", "https://game.example"))
    assert_grants(preflight(c, "/join", "https://game.example"), "https://game.example")
    for origin in DEFAULT_ORIGINS:
        assert_no_grant(preflight(c, "/join", origin))


def test_wildcard_never_comes_with_credentials(start_backend) -> None:
    c = client_of(start_backend("--game-servers", "1", "--cors-origin", "*", "--cors-origin", "https://game.example"))
    anyone = preflight(c, "/request_token", "https://anyone.example")
    assert anyone.status_code == 204
    assert anyone.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in anyone.headers
    named = preflight(c, "/request_token", "https://game.example")
    assert_grants(named, "https://game.example")
