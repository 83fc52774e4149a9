"""Reconnect storms of 200 sessions: everybody comes back, and backoff policies shape the herd."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from loadtest.collectors import http as http_collector
from loadtest.results.runfolder import RunFolder
from tests.conftest import GENEROUS_LIMITS
from tests.locust_run import assert_clean, run_locust

#: 200 sessions and their storms are the suite's heaviest load: one such run at a time.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heavy")]

PLAYERS = 200
STORM_AT = 8
# 20 Hz keeps 200 sessions (and the proxy in front of them) well inside a 2-core machine; a storm
# is about reconnecting, not about tick fidelity.
BACKEND = ("--tick-rate", "20", *GENEROUS_LIMITS)


def _storm_run(backend: BackendProcess, out: Path, side: str, *policy: str):  # type: ignore[no-untyped-def]
    return run_locust(
        backend.url,
        out,
        users=PLAYERS,
        spawn_rate=50,
        run_time="18s",
        extra=(
            "--lt-session-length",
            "120",
            "--lt-input-rate",
            "5",
            "--lt-storm",
            f"at={STORM_AT},side={side}",
            *policy,
        ),
        env={"LOADTEST_ADMIN_TOKEN": backend.admin_token},
    )


def _join_peak_after_storm(out: Path) -> int:
    seconds = [s for s in RunFolder(out).seconds(collectors=[http_collector.NAME]) if http_collector.NAME in s.buckets]
    storm_second = seconds[0].second + STORM_AT - 1
    join = http_collector.REQUESTS("/join")
    return int(max(s.buckets[http_collector.NAME].counts.get(join, 0) for s in seconds if s.second >= storm_second))


def _assert_full_recovery(result, cause: str) -> None:  # type: ignore[no-untyped-def]
    assert_clean(result)
    rc = result.summary["reconnect"]
    assert rc["storms"] == 1
    assert rc["dropped_by_cause"] == {cause: PLAYERS}, rc
    assert rc["recovered"] == PLAYERS
    assert rc["recovered_ratio"] == 1.0
    assert rc["gave_up"] == 0
    assert result.summary["ws"]["sessions_opened"] == 2 * PLAYERS


def test_client_side_storm_of_200_sessions_recovers(tmp_path: Path) -> None:
    with BackendProcess(args=BACKEND) as backend:
        result = _storm_run(backend, tmp_path / "run", "client")
    _assert_full_recovery(result, "storm_client_drop")


def test_server_side_storm_recovers_and_no_backoff_makes_a_higher_join_peak(tmp_path: Path) -> None:
    with BackendProcess(args=BACKEND) as backend:
        herd = _storm_run(backend, tmp_path / "none", "server", "--lt-reconnect", "none")
    with BackendProcess(args=BACKEND) as backend:
        jittered = _storm_run(
            backend, tmp_path / "full", "server", "--lt-reconnect", "full", "--lt-reconnect-base", "4"
        )
    _assert_full_recovery(herd, "server_1012")
    _assert_full_recovery(jittered, "server_1012")
    assert herd.summary["reconnect"]["storm_dropped"] == PLAYERS
    herd_peak = _join_peak_after_storm(tmp_path / "none")
    jittered_peak = _join_peak_after_storm(tmp_path / "full")
    assert herd_peak > 1.5 * jittered_peak, (herd_peak, jittered_peak)
