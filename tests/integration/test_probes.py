"""Replay, forgery, rate-limit and CORS probes against the reference backend, right and wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from loadtest.probes.replay import ReplayProbe
from tests.conftest import GENEROUS_LIMITS
from tests.locust_run import RunningLocust, assert_clean, run_healthy, run_locust, server_tick_rates

pytestmark = pytest.mark.slow

SECRET = "probe-test-secret-0123456789abcdef"  # 32+ bytes: shorter HS256 keys are refused
#: Every kind the reference backend's replay probe carries out, as the probe itself declares them.
ALL_KINDS = set(ReplayProbe.supported)
CORS_RUN = {"users": 1, "spawn_rate": 1, "run_time": "6s"}


def _run_probes(  # type: ignore[no-untyped-def]
    backend: BackendProcess, out: Path, *extra: str, users: int = 1, run_time: str = "8s", healthy: bool = False
):
    return (run_healthy if healthy else run_locust)(
        backend.url,
        out,
        users=users,
        spawn_rate=users,
        run_time=run_time,
        extra=("--lt-session-length", "60", *extra),
        env={"LOADTEST_JWT_SECRET": SECRET},
    )


def test_every_kind_is_rejected_by_a_correct_backend_and_counts_match_its_metrics(tmp_path: Path) -> None:
    args = ("--jwt-secret", SECRET, "--ticket-ttl", "2", *GENEROUS_LIMITS)
    with BackendProcess(args=args) as backend:
        result = _run_probes(backend, tmp_path / "run", "--lt-replay-rate", "3", users=8, run_time="10s", healthy=True)
    assert_clean(result)
    s = result.summary
    replay = s["replay"]
    assert set(replay["by_kind"]) == ALL_KINDS
    assert replay["accepted"] == 0
    assert replay["attempts"] == replay["rejected"] >= 16
    assert replay["skipped"] == {}
    # Every refusal we saw is one the server counted, reason by reason.
    for reason, ours in replay["refused_ticket"].items():
        assert ours == result.target_delta(f'gamebackend_tickets_rejected_total{{reason="{reason}"}}'), reason
    for reason, ours in replay["refused_jwt"].items():
        assert ours == result.target_delta(f'gamebackend_jwt_rejections_total{{reason="{reason}"}}'), reason
    # The players beside the probes were not disturbed.
    assert s["ws"]["unexpected_disconnects"] == 0
    assert s["ws"]["ended"] == {"client": 8}
    assert s["rate_limit"]["responses_429"] == {}
    # Their tick rate held, or the backend's own gauge says this busy machine slowed it as much.
    server_low = min(server_tick_rates(result.out_dir), default=None)
    assert s["tick"]["p5_hz"] >= s["tick"]["threshold_hz"] or (server_low is not None and server_low < 54), (
        s["tick"],
        server_low,
    )


def test_rate_limit_probe_finds_the_configured_limit(tmp_path: Path) -> None:
    with BackendProcess() as backend:  # /request_token: 5 per second, burst 10, per IP
        result = run_locust(
            backend.url,
            tmp_path / "run",
            users=1,
            spawn_rate=1,
            run_time="14s",
            extra=(
                "--lt-session-length",
                "60",
                "--lt-rate-limit-probe",
                "/request_token",
                "--lt-rate-limit-steps",
                "2,10,20,40",
            ),
        )
    assert_clean(result)
    rl = result.summary["rate_limit"]
    probe = rl["probe"]
    assert rl["enforced"] is True
    assert probe["steps"][0]["limited"] == 0, "2/s is under the limit"
    assert probe["limited_from_rate"] == 10
    assert 4.0 <= probe["estimated_limit_per_s"] <= 6.0, probe
    assert probe["retry_after_p50_s"] >= 1
    server = result.target_delta('gamebackend_rate_limited_total{endpoint="/request_token",scope="ip"}')
    assert sum(step["limited"] for step in probe["steps"]) == server


def test_cors_probe_reports_misconfigured_origins(start_backend, tmp_path: Path) -> None:
    # A wildcard backend lets the hostile origin in; and the game's real origin is not configured.
    # The two short runs are independent, so they run side by side.
    wildcard, narrow = start_backend("--cors-origin", "*"), start_backend()
    runs = [
        RunningLocust(wildcard.url, tmp_path / "w", **CORS_RUN, extra=("--lt-cors-origin", "http://localhost:8060")),
        RunningLocust(narrow.url, tmp_path / "n", **CORS_RUN, extra=("--lt-cors-origin", "https://game.example")),
    ]
    allowed_hostile, missing = [run.wait(timeout=120) for run in runs]
    assert_clean(allowed_hostile)
    assert_clean(missing)
    kinds = {(f["finding"], f["origin"]) for f in allowed_hostile.summary["cors"]["findings"]}
    assert kinds == {("refused_origin_allowed", "https://evil.example")}
    kinds = {(f["finding"], f["origin"]) for f in missing.summary["cors"]["findings"]}
    assert kinds == {("missing_allow_origin", "https://game.example")}
