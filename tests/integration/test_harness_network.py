"""TLS targets and source-address pools, with real certificates and real loopback addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from tests.client import wait_until
from tests.conftest import client_of
from tests.locust_run import RunningLocust, assert_clean, run_locust

pytestmark = [pytest.mark.slow, pytest.mark.backend(tls=True)]

RUN = {"users": 3, "spawn_rate": 3, "run_time": "5s"}
PLAY = ("--lt-session-length", "60")
CROWD = {"users": 20, "spawn_rate": 20, "run_time": "60s"}  # stopped once the backend saw enough
LIMITED = "gamebackend_rate_limited_total"


def test_https_and_wss_with_a_private_ca_bundle(backend: BackendProcess, ca_pem: Path, tmp_path: Path) -> None:
    assert backend.url.startswith("https://")
    result = run_locust(backend.url, tmp_path / "run", **RUN, extra=(*PLAY, "--lt-ca-bundle", str(ca_pem)))
    assert_clean(result)
    s = result.summary
    assert s["ws"]["sessions_opened"] == 3
    assert s["tick"]["ticks_received"] > 100
    assert s["run"]["tls_verification"] == "on"


def test_an_unknown_certificate_is_refused_by_default(backend: BackendProcess, tmp_path: Path) -> None:
    result = run_locust(backend.url, tmp_path / "run", **RUN, extra=PLAY)
    assert_clean(result)
    s = result.summary
    assert s["ws"]["sessions_opened"] == 0
    assert s["http"]["token"]["status"] == {"0": s["http"]["token"]["count"]}


def test_the_insecure_switch_works_and_is_marked(backend: BackendProcess, tmp_path: Path) -> None:
    result = run_locust(backend.url, tmp_path / "run", **RUN, extra=(*PLAY, "--lt-insecure"))
    assert_clean(result)
    assert result.summary["ws"]["sessions_opened"] == 3
    assert result.summary["run"]["tls_verification"] == "off (insecure)"


def test_source_addresses_spread_players_over_per_ip_limits(start_backend, tmp_path: Path) -> None:
    # Real defaults: /request_token allows a burst of 10 per IP. 20 players from one address
    # meet 429s; the same 20 spread over 20 loopback addresses do not. Each run lasts until its
    # backend saw what it is about (a 429; all 20 players in), however busy the machine is.
    one_backend, spread_backend = start_backend(generous=False), start_backend(generous=False)
    one = RunningLocust(one_backend.url, tmp_path / "one", **CROWD, extra=PLAY)
    spread = RunningLocust(
        spread_backend.url,
        tmp_path / "spread",
        **CROWD,
        extra=(*PLAY, "--lt-source-addresses", "127.0.0.2-127.0.0.21"),
    )
    try:
        refused = client_of(one_backend)
        limited = wait_until(lambda: refused.metric(LIMITED, endpoint="/request_token", scope="ip") > 0, 60, 0.5)
        admitted = client_of(spread_backend)
        all_in = wait_until(lambda: admitted.metric("gamebackend_players") == 20, 60, 0.5)
    finally:
        one, spread = one.stop(), spread.stop()
    assert limited and all_in, (limited, all_in)
    assert_clean(one)
    assert_clean(spread)
    assert one.summary["rate_limit"]["responses_429"].get("token", 0) > 0
    assert spread.summary["rate_limit"]["responses_429"] == {}
    assert spread.summary["ws"]["sessions_opened"] == 20
    assert spread.summary["run"]["source_addresses"] == 20
