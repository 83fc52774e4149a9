"""TLS targets and source-address pools, with real certificates and real loopback addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from loadtest.backend import BackendProcess
from tests.conftest import GENEROUS_LIMITS
from tests.locust_run import assert_clean, run_locust

RUN = {"users": 3, "spawn_rate": 3, "run_time": "5s"}
PLAY = ("--lt-session-length", "60")


@pytest.fixture(scope="module")
def tls_backend(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    args = ("--tls-cert", str(folder / "server.pem"), "--tls-key", str(folder / "server.pem"), *GENEROUS_LIMITS)
    with BackendProcess(args=args) as backend:
        assert backend.url.startswith("https://")
        yield backend, folder / "ca.pem"


def test_https_and_wss_with_a_private_ca_bundle(tls_backend, tmp_path: Path) -> None:
    backend, ca = tls_backend
    result = run_locust(backend.url, tmp_path / "run", **RUN, extra=(*PLAY, "--lt-ca-bundle", str(ca)))
    assert_clean(result)
    s = result.summary
    assert s["ws"]["sessions_opened"] == 3
    assert s["tick"]["ticks_received"] > 100
    assert s["run"]["tls_verification"] == "on"


def test_an_unknown_certificate_is_refused_by_default(tls_backend, tmp_path: Path) -> None:
    backend, _ = tls_backend
    result = run_locust(backend.url, tmp_path / "run", **RUN, extra=PLAY)
    assert_clean(result)
    s = result.summary
    assert s["ws"]["sessions_opened"] == 0
    assert s["http"]["/request_token"]["status"] == {"0": s["http"]["/request_token"]["count"]}


def test_the_insecure_switch_works_and_is_marked(tls_backend, tmp_path: Path) -> None:
    backend, _ = tls_backend
    result = run_locust(backend.url, tmp_path / "run", **RUN, extra=(*PLAY, "--lt-insecure"))
    assert_clean(result)
    assert result.summary["ws"]["sessions_opened"] == 3
    assert result.summary["run"]["tls_verification"] == "off (insecure)"


def test_source_addresses_spread_players_over_per_ip_limits(tmp_path: Path) -> None:
    # Real defaults: /request_token allows a burst of 10 per IP. 20 players from one address
    # meet 429s; the same 20 spread over 20 loopback addresses do not.
    with BackendProcess() as backend:
        one = run_locust(backend.url, tmp_path / "one", users=20, spawn_rate=20, run_time="4s", extra=PLAY)
    with BackendProcess() as backend:
        spread = run_locust(
            backend.url,
            tmp_path / "spread",
            users=20,
            spawn_rate=20,
            run_time="4s",
            extra=(*PLAY, "--lt-source-addresses", "127.0.0.2-127.0.0.21"),
        )
    assert_clean(one)
    assert_clean(spread)
    assert one.summary["rate_limit"]["responses_429"].get("/request_token", 0) > 0
    assert spread.summary["rate_limit"]["responses_429"] == {}
    assert spread.summary["ws"]["sessions_opened"] == 20
    assert spread.summary["run"]["source_addresses"] == 20
