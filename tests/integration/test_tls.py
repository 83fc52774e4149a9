"""TLS: with --tls-cert/--tls-key the matchmaker serves https:// and wss:// on one port, and only that.

A throwaway CA from ``trustme`` signs a certificate for 127.0.0.1; clients trust that CA alone.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
import requests

from loadtest.backend import BackendProcess
from tests.client import GameClient, next_of_type, ticks

pytestmark = [pytest.mark.backend("--game-servers", "1", tls=True), pytest.mark.xdist_group("tls")]


@pytest.fixture
def tls_client(backend: BackendProcess, ca_pem: Path) -> GameClient:
    return GameClient(backend.url, verify=str(ca_pem))


@pytest.fixture
def ws_ssl(ca_pem: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_pem))


def test_url_is_https(backend: BackendProcess) -> None:
    assert backend.url.startswith("https://127.0.0.1:")


def test_the_whole_protocol_runs_over_https_and_wss(tls_client: GameClient, ws_ssl: ssl.SSLContext) -> None:
    assert tls_client.ws_url.startswith("wss://")
    _, joined = tls_client.ticket("secure")
    with tls_client.connect(joined["ticket"], ssl=ws_ssl) as ws:
        assert next_of_type(ws, "welcome")["room"] == joined["room"]
        ws.send(json.dumps({"type": "input", "seq": 1, "x": 1, "y": 0}))
        assert any(t["ack"] == 1 for t in ticks(ws, 30))
    assert tls_client.metric("gamebackend_tickets_consumed_total") >= 1


def test_a_spent_ticket_is_refused_over_wss_too(tls_client: GameClient, ws_ssl: ssl.SSLContext) -> None:
    _, joined = tls_client.ticket()
    with tls_client.connect(joined["ticket"], ssl=ws_ssl) as ws:
        next_of_type(ws, "welcome")
    assert tls_client.refusal(joined["ticket"], ssl=ws_ssl) == (
        403,
        {"error": "ticket refused: used", "reason": "used"},
    )


def test_clients_that_do_not_trust_the_ca_are_refused(backend: BackendProcess, tls_client: GameClient) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(backend.url + "/healthz", timeout=10)
    _, joined = tls_client.ticket()
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        tls_client.connect(joined["ticket"], ssl=ssl.create_default_context()),
    ):
        pass


def test_plain_http_on_the_tls_port_gets_nothing(backend: BackendProcess, tls_client: GameClient) -> None:
    plain = backend.url.replace("https://", "http://", 1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(plain + "/healthz", timeout=10)
    assert tls_client.get("/healthz").status_code == 200, "and the server is none the worse for it"
