"""Short real Locust runs: what the collectors count equals what the backend itself counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from loadtest.config.settings import PlayerSettings
from tests.locust_run import assert_clean, run_healthy, run_locust

pytestmark = pytest.mark.slow


@pytest.fixture
def limited_backend():
    # The real default limits: 20 players logging in at once from one address meet 429s.
    with BackendProcess(args=("--join-player-rate", "50", "--join-player-burst", "50")) as backend:
        yield backend


def test_collector_counts_equal_the_backends_own_counters(limited_backend: BackendProcess, tmp_path: Path) -> None:
    result = run_locust(
        limited_backend.url,
        tmp_path / "run",
        users=20,
        spawn_rate=20,
        run_time="10s",
        extra=("--lt-session-length", "3", "--lt-think-time", "0.5"),
    )
    assert_clean(result)
    s = result.summary
    assert s["target_metrics"]["scraped"]
    # Tickets: every session the players opened consumed exactly one ticket on the server.
    assert s["ws"]["sessions_opened"] > 20
    assert s["ws"]["sessions_opened"] == result.target_delta("gamebackend_tickets_consumed_total")
    assert s["ws"]["sessions_opened"] == result.target_delta("gamebackend_ws_connections_opened_total")
    # Rate limits: the players met every 429 the server sent, step by step.
    ours = s["rate_limit"]["responses_429"]
    assert ours.get("token", 0) > 0, "20 logins at once from one IP must meet the 10-token burst"
    server_token = result.target_delta('gamebackend_rate_limited_total{endpoint="/request_token",scope="ip"}')
    server_join = sum(
        result.target_delta(f'gamebackend_rate_limited_total{{endpoint="/join",scope="{scope}"}}')
        for scope in ("ip", "player")
    )
    assert ours.get("token", 0) == server_token
    assert ours.get("join", 0) == server_join
    # Our own HTTP histogram saw every request Locust made.
    assert s["http"]["token"]["status"].get("429", 0) == ours["token"]
    assert s["rate_limit"]["retry_after_not_honoured"] == 0
    assert s["rate_limit"]["retry_after_honoured"] > 0


def test_tick_rate_matches_the_servers_gauge_when_idle_and_cors_passes(
    shared_backend: BackendProcess, tmp_path: Path
) -> None:
    """One quiet run on a correct backend: its tick numbers match the server's, and the CORS probe passes."""
    # Scraped every second, so a short run on a busy machine still has the gauge while it played.
    settings = tmp_path / "settings.json"
    settings.write_text(PlayerSettings(scrape_interval=1.0).to_json(), encoding="utf-8")
    result = run_healthy(
        shared_backend.url,
        tmp_path / "run",
        users=2,
        spawn_rate=2,
        run_time="8s",
        extra=("--lt-session-length", "60", "--lt-cors-origin", "http://localhost:8060"),
        env={"LOADTEST_SETTINGS": str(settings)},
    )
    assert_clean(result)
    cors = result.summary["cors"]
    assert cors["checked"] == 4  # (allowed + refused origin) x (token + join)
    assert cors["findings"] == []
    tick = result.summary["tick"]
    # The server's own gauge, as scraped while the players were connected.
    scrapes = [json.loads(line) for line in (result.out_dir / "data/target_metrics.jsonl").open()]
    gauges = [
        v
        for scrape in scrapes
        if scrape["phase"] == "during"
        for k, v in scrape["samples"].items()
        if k.startswith("gamebackend_game_server_tick_rate_hz") and 'stat="mean"' in k
    ]
    assert tick["nominal_hz"] == 60
    assert tick["ticks_received"] > 500
    assert tick["missed_ticks"] == 0
    assert gauges, "the backend exposes its effective tick rate"
    assert abs(tick["p50_hz"] - max(gauges)) <= 1.0
    assert abs(tick["p50_hz"] - 60) <= 1.0
    assert tick["degradation"] is None
