"""The simulated players under real conditions: drops, rate limits, workers, garbage, ramp-down.

Tick degradation under a full room is judged in test_run_e2e.py, against the backend's own gauge."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from loadtest.collectors import reconnects
from loadtest.results.runfolder import LogTail, RunFolder
from tests.client import GameClient, wait_until
from tests.conftest import GENEROUS_LIMITS
from tests.integration.test_hostile_target import hostile
from tests.locust_run import ROOT, RunningLocust, assert_clean, run_healthy, run_locust

pytestmark = pytest.mark.slow


def recovered_in_log(tail: LogTail, seen: list[float]) -> float:
    """Recoveries the run log holds so far, read through a tail (each line once)."""
    seen += [r.counts.get(reconnects.RECOVERED(), 0) for r in tail.poll() if r.collector == reconnects.NAME]
    return sum(seen)


def test_dropped_players_recover_by_policy_and_honour_retry_after(tmp_path: Path) -> None:
    players = 30
    # A small /join burst, so 30 players reconnecting at once certainly meet 429s.
    args = (
        "--join-burst",
        "5",
        "--join-rate",
        "10",
        "--join-player-rate",
        "50",
        "--join-player-burst",
        "50",
        "--token-rate",
        "100",
        "--token-burst",
        "100",
    )
    with BackendProcess(args=args) as backend:
        client = GameClient(backend.url)
        tail, seen = RunFolder(tmp_path / "run").tail(), []
        run = RunningLocust(
            backend.url,
            tmp_path / "run",
            users=players,
            spawn_rate=players,
            run_time="60s",
            extra=("--lt-session-length", "120"),
        )
        try:
            assert wait_until(lambda: client.metric("gamebackend_players") == players, timeout=30)
            r = client.post(
                "/admin/api/chaos",
                json={"action": "disconnect", "fraction": 1.0, "close_code": 1012},
                headers={"Authorization": f"Bearer {backend.admin_token}"},
            )
            assert r.json()["dropped"] == players
            assert wait_until(lambda: client.metric("gamebackend_players") == players, timeout=40)
            # The last recovery reaches the run log within the second it happened in.
            assert wait_until(lambda: recovered_in_log(tail, seen) == players, timeout=15)
        finally:
            result = run.stop()
    assert_clean(result)
    s = result.summary
    rc = s["reconnect"]
    assert rc["dropped"] == players
    assert rc["dropped_by_cause"] == {"server_1012": players}
    assert rc["recovered"] == players
    assert rc["recovered_ratio"] == 1.0
    assert rc["gave_up"] == 0
    assert rc["limited"] > 0, "some reconnects met a 429"
    assert rc["recovery_p50_s"] >= 1.0, "exponential backoff waits at least its 1 s base"
    rl = s["rate_limit"]
    assert rl["responses_429"].get("join", 0) > 0
    assert rl["retry_after_not_honoured"] == 0
    assert rl["retry_after_honoured_ratio"] == 1.0
    assert s["ws"]["unexpected_disconnects"] == players


def _counts(result) -> dict:  # type: ignore[no-untyped-def]
    s = result.summary
    return {
        "sessions": s["ws"]["sessions_opened"],
        "ended": s["ws"]["ended"],
        "joins": s["http"]["join"]["count"],
        "tokens": s["http"]["token"]["count"],
        "tickets_consumed": result.target_delta("gamebackend_tickets_consumed_total"),
    }


def test_two_workers_aggregate_to_the_same_counts_as_one_process(start_backend, tmp_path: Path) -> None:
    extra = ("--lt-sessions-per-user", "2", "--lt-session-length", "1.5", "--lt-think-time", "0.2")
    url = start_backend().url
    single = run_healthy(url, tmp_path / "one", users=10, spawn_rate=10, run_time="10s", extra=extra)
    double = run_healthy(
        url, tmp_path / "two", users=10, spawn_rate=10, run_time="10s", extra=(*extra, "--processes", "2")
    )
    assert_clean(single)
    assert_clean(double)
    for result in (single, double):
        # Within one run: each player logged in once and played two sessions, and the backend's own
        # ticket counter saw every one of them.
        c = _counts(result)
        assert c["sessions"] == c["joins"] == c["tickets_consumed"] == 2 * c["tokens"], c
        assert c["ended"] == {"client": c["sessions"]}, c
    workers = {line.split('"w":"')[1].split('"')[0] for line in (double.out_dir / "data/aggregates.jsonl").open()}
    assert len(workers - {"master"}) == 2, "the players' data came from two worker processes"
    assert double.summary["tick"]["ticks_received"] > 0
    assert single.summary["generator"]["workers"] == 1
    assert double.summary["generator"]["workers"] == 2
    if "failed to send heartbeat" in double.stderr:
        # Locust's master re-spawns a missing worker's users on the other: more players than asked.
        pytest.skip("a worker missed its heartbeat on this busy machine, so Locust started extra users")
    expected = {"sessions": 20, "ended": {"client": 20}, "joins": 20, "tokens": 10, "tickets_consumed": 20}
    assert _counts(single) == expected
    assert _counts(double) == expected


def test_malformed_replies_become_recorded_errors_not_crashes(tmp_path: Path) -> None:
    with hostile("malformed") as url:
        result = run_locust(
            url,
            tmp_path / "run",
            users=4,
            spawn_rate=4,
            run_time="8s",
            extra=("--lt-session-length", "2", "--lt-think-time", "0.1"),
        )
    assert_clean(result)
    s = result.summary
    http_errors = s["protocol_errors"]["http"]
    assert http_errors.get("/request_token:invalid_json", 0) > 0
    assert http_errors.get("/request_token:wrong_shape", 0) > 0
    assert http_errors.get("/request_token:missing_field", 0) > 0
    assert http_errors.get("/join:missing_field", 0) > 0
    assert http_errors.get("/join:invalid_json", 0) > 0
    ws_errors = s["protocol_errors"]["ws"]
    assert {"invalid_json", "not_an_object", "bad_tick"} <= ws_errors.keys()
    assert s["ws"]["sessions_opened"] > 0, "players kept going past every bad reply"
    assert s["tick"]["ticks_received"] > 0


def test_no_socket_is_left_open_after_ramp_down(tmp_path: Path) -> None:
    with BackendProcess(args=GENEROUS_LIMITS) as backend:
        client = GameClient(backend.url)
        run = RunningLocust(
            backend.url,
            tmp_path / "run",
            users=30,
            spawn_rate=30,
            run_time="60s",
            locustfile=ROOT / "tests/locustfiles/rampdown.py",
            extra=("--lt-session-length", "120"),
        )
        try:
            assert wait_until(lambda: client.metric("gamebackend_players") == 30, timeout=20)
            # The shape drops to 5 users at 6 s: the 25 stopped users' sockets must close.
            assert wait_until(lambda: client.metric("gamebackend_players") == 5, timeout=20)
        except BaseException:
            run.stop()
            raise
        result = run.wait(timeout=60)
        assert wait_until(lambda: client.metric("gamebackend_players") == 0, timeout=10)
    assert_clean(result)
    ended = result.summary["ws"]["ended"]
    assert ended == {"client": 30}, "every session, stopped at ramp-down or at the end, closed as ours"
    assert result.summary["ws"]["unexpected_disconnects"] == 0
