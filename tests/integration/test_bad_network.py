"""`loadtest run bad-network` end to end: players through the relay against the embedded backend.

Two short runs prove the scenario: it passes on the reference backend (faults carried out, ghosts
dropped by the heartbeat, seats given back, the relay's cost in the generator section), and with
``no-heartbeat`` and ``seat-leak`` together it fails with each defect's own gate and finding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.locust_run import assert_clean, loadtest, saturation, summary_of

pytestmark = pytest.mark.slow

#: The bundled scenario, made shorter: the half-open spell at 6 s (players are all in by then
#: on a busy machine) and the freeze at 7 s last 3 s; the resets come at 11 s. A heartbeat of 1 s
#: drops a silent player within about 1.5 s.
SHORTER = (
    "--set", "scenario.duration=14s",
    "--set", "events[0].seconds=3",
    "--set", "events[1].seconds=3",
    "--set", "events[2].at=11s",
    "--set", "target.backend.heartbeat=1",
)  # fmt: skip


def _run(out: Path, *args: str) -> tuple[int, dict, str]:
    done = loadtest("run", "bad-network", "--out", str(out), *SHORTER, *args)
    assert (out / "summary.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    summary = summary_of(out)
    if why := saturation(summary):
        pytest.skip(f"this machine is too busy to judge the run: {why}")
    return done.returncode, summary, done.stdout


def test_bad_network_passes_on_the_reference_backend(tmp_path: Path) -> None:
    code, summary, stdout = _run(tmp_path / "healthy")
    assert code == 0, stdout[-3000:]
    assert_clean(tmp_path / "healthy")  # the relay's thread logged no error, even while stopping
    assert summary["integrity"]["carried_out"] is True, summary["integrity"]
    assert [s["side"] for s in summary["integrity"]["storms"]] == ["blackhole", "freeze", "reset"]
    net = summary["network"]
    hole = net["faults"]["blackhole"]
    assert hole["connections"] >= 3 and hole["server_closed"] == hole["connections"]
    assert hole["close_after_max_s"] < 3 and net["held_at_end"] == 0
    assert hole["closed_in_fault"] == hole["connections"]  # the heartbeat noticed each one
    frozen = net["faults"]["freeze"]
    assert frozen["connections"] >= 3 and frozen["closed_in_fault"] == frozen["connections"]
    assert net["outlived_faults"] == 0
    assert net["faults"]["reset"]["connections"] >= 3
    assert net["rejoin"]["attempts"] > 0 and net["rejoin"]["refused_full"] == 0
    assert summary["reconnect"]["gave_up"] == 0 and summary["reconnect"]["recovered"] == summary["reconnect"]["dropped"]
    # Every player went through the relay, from its own source address: 20 players, 20 addresses,
    # and the per-IP limits of /request_token (5/s, burst 10) never met.
    assert summary["rate_limit"]["responses_429"] == {}
    relay = summary["generator"]["relay"]
    assert relay == net["relay"] and relay["routes_connections"] >= 40 and relay["upstream_failed"] == 0
    assert relay["added_delay_mean_ms"] > 5  # a quarter of the players are on a 60 ms link
    assert any("closed" in f and "half-open" in f for f in summary["findings"])


def test_bad_network_fails_with_each_defects_finding(tmp_path: Path) -> None:
    code, summary, stdout = _run(tmp_path / "broken", "--defect", "no-heartbeat", "--defect", "seat-leak")
    assert code == 1, stdout[-3000:]
    assert summary["integrity"]["carried_out"] is True, summary["integrity"]
    failed = {g["metric"] for g in summary["gates"] if not g["passed"]}
    assert failed == {"network.outlived_faults", "network.rejoin.refused_full"}, summary["gates"]
    findings = " ".join(summary["findings"])
    assert "refused as full" in findings
    assert "no heartbeat detects dead players" in findings
    hole = summary["network"]["faults"]["blackhole"]
    # Without a heartbeat the ghosts outlive their 3 s half-open spell: they go only when their
    # players come back and replace them.
    assert summary["network"]["held_max_s"] >= 3
    assert hole["close_after_p50_s"] is None or hole["close_after_p50_s"] >= 3
    assert hole["closed_in_fault"] == 0
    frozen = summary["network"]["faults"]["freeze"]
    assert frozen["connections"] >= 3 and frozen["closed_in_fault"] == 0 and frozen["outlived"] == frozen["connections"]
    assert "kept" in findings and "frozen" in findings
