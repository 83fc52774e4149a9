"""A verdict must be earned: runs that did not do their plan are "not carried out" (exit 3) with
the reason in summary.json, whatever their gates say. Each case is a real, short run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from loadtest.backend import BackendProcess
from tests.integration.test_hostile_target import hostile
from tests.locust_run import ROOT, assert_clean

LOADTEST = [sys.executable, "-m", "loadtest"]
GENEROUS = ("--token-rate", "1000", "--token-burst", "1000", "--join-rate", "1000", "--join-burst", "1000")
GENEROUS += ("--join-player-rate", "1000", "--join-player-burst", "1000")
#: What a test must not hand the harness: with these it could reach the target's chaos API and sign tokens.
SECRETS = ("LOADTEST_ADMIN_TOKEN", "LOADTEST_JWT_SECRET")


def _scenario(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(body)
    return path


def _start(*args: str, **popen: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.Popen(
        [*LOADTEST, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, **popen
    )


def _wait_for_players(proc: subprocess.Popen[str], at_least: int, timeout: float = 60) -> str:
    """Read the progress lines until ``at_least`` players are connected."""
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        seen += line
        if "players" in line and int(line.split("players")[1].split()[0]) >= at_least:
            return seen
    raise AssertionError(f"players never reached {at_least}:\n{seen}")


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return out


def _integrity(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False and summary["outcome"] == "not carried out"
    return summary["integrity"]


@pytest.mark.slow
def test_a_worker_lost_mid_run_is_not_carried_out_even_with_locusts_port_taken(tmp_path: Path) -> None:
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 5557))  # Locust's fixed default: another program holds it
        blocker.listen()
    except OSError:
        pass  # something already holds it, which is the case being tested anyway
    path = _scenario(
        tmp_path,
        '[scenario]\nname = "lost-worker"\nduration = "24s"\n[load]\nusers = 10\nspawn_rate = 10\nworkers = 2\n'
        '[player]\nsession_length = "10m"\n[[gates]]\nexpr = "ws.sessions_opened >= 1"\n',
    )
    out = tmp_path / "run"
    proc = _start("run", str(path), "--out", str(out))
    try:
        _wait_for_players(proc, 10)
        locust = [p for p in psutil.Process(proc.pid).children(recursive=True) if "locust" in " ".join(p.cmdline())]
        workers = [p for p in locust if p.parent() is not None and p.parent().pid in {q.pid for q in locust}]
        assert len(workers) == 2, [p.cmdline() for p in locust]
        workers[0].send_signal(signal.SIGKILL)
        output = _finish(proc)
    finally:
        blocker.close()
    assert proc.returncode == 3, output[-3000:]
    integrity = _integrity(out)
    assert integrity["workers_seen"] == 2, "both workers ran load: the master's port was free for this run"
    assert len(integrity["workers_lost"]) == 1 and integrity["workers_lost"][0]["sessions"] >= 1
    assert integrity["workers_lost"][0]["users"] == 5, integrity["workers_lost"]
    assert any("was lost at" in r for r in integrity["reasons"]), integrity["reasons"]
    assert "NOT CARRIED OUT" in output and "PASS  ws.sessions_opened >= 1" in output
    # The load per worker, from each worker's own samples: Locust gave each half of the 10 users.
    (stage,) = integrity["stages"]
    assert (stage["users"], stage["users_reached"]) == (10, 10), stage
    assert stage["peak_connected"] >= 9, stage
    assert len(stage["per_worker"]) == 2, stage
    for worker in stage["per_worker"].values():
        assert (worker["users_planned"], worker["users_reached"]) == (5, 5), stage
        assert 1 <= worker["peak_connected"] <= 5, stage
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generator"]["sessions_per_worker_planned"] == 5, summary["generator"]
    assert 1 <= summary["generator"]["sessions_per_worker_peak"] <= 5, summary["generator"]
    assert "load stage 1: 10 users planned, 10 users reached" in output
    assert output.count("5 users planned, 5 reached") == 2, output[-3000:]
    junit = (out / "junit.xml").read_text()
    assert "load stage 1: 10 users planned" in junit and junit.count("5 users planned, 5 reached") == 2


@pytest.mark.slow
def test_a_storm_and_probe_kinds_the_target_does_not_allow_are_not_carried_out(tmp_path: Path) -> None:
    """An outside target, and neither its admin token nor its signing key: the server-side storm
    cannot be set off and the expired-token probe cannot be signed."""
    with BackendProcess(args=GENEROUS) as backend:
        path = _scenario(
            tmp_path,
            '[scenario]\nname = "no-keys"\nduration = "12s"\n[load]\nusers = 4\nspawn_rate = 4\n'
            '[player]\nsession_length = "10m"\n'
            '[probes]\nreplay_rate = 2.0\nreplay_kinds = ["jwt_expired", "ticket_reuse"]\n'
            '[[events]]\nat = "4s"\nkind = "storm"\nside = "server"\nfraction = 1.0\n'
            '[[gates]]\nexpr = "replay.accepted == 0"\n',
        )
        out = tmp_path / "run"
        output = _finish(_start("run", str(path), "--target", backend.url, "--out", str(out)))
    integrity = _integrity(out)
    reasons = " | ".join(integrity["reasons"])
    assert "server-side storm planned at 4 s was not carried out" in reasons, reasons
    assert "replay jwt_expired was not checked" in reasons, reasons
    checked = {p["probe"]: p["checked"] for p in integrity["probes"]}
    assert checked["replay ticket_reuse"] is True, "what could run did run"
    assert "NOT CARRIED OUT" in output
    assert "jwt_expired sign tokens with the target's key" in output, "said before the run, not only after"


def test_a_gate_on_a_metric_no_run_can_have_is_a_scenario_error_before_any_load(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[scenario]\nduration = "5s"\n[[gates]]\nexpr = "tick.p5 >= 54"\n')
    done = subprocess.run([*LOADTEST, "run", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}: gates[0].expr: no run can have a metric named 'tick.p5'" in done.stderr
    assert "tick.p5_hz" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_target_that_stops_answering_is_not_carried_out(tmp_path: Path) -> None:
    with BackendProcess(args=GENEROUS) as backend:
        path = _scenario(
            tmp_path,
            # 24 s: on a busy machine the players may take 12 s to connect; the freeze must still
            # leave more than the 5 s silent tail the rule asks for.
            '[scenario]\nname = "frozen"\nduration = "24s"\n[load]\nusers = 6\nspawn_rate = 6\n'
            '[player]\nsession_length = "2s"\nthink_time = "0.2s"\nconnect_timeout = "1.5s"\n'
            '[[gates]]\nexpr = "http./join.p95_ms < 250"\n',
        )
        out = tmp_path / "run"
        proc = _start("run", str(path), "--target", backend.url, "--out", str(out))
        frozen = [psutil.Process(backend.process.pid), *psutil.Process(backend.process.pid).children(recursive=True)]
        try:
            _wait_for_players(proc, 3)
            time.sleep(1)
            for p in frozen:
                p.send_signal(signal.SIGSTOP)
            output = _finish(proc)
        finally:
            for p in frozen:
                p.send_signal(signal.SIGCONT)
    assert proc.returncode == 3, output[-3000:]
    integrity = _integrity(out)
    assert integrity["target_silent_from_s"] is not None
    assert any("stopped answering" in r for r in integrity["reasons"]), integrity["reasons"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_metrics"]["failing_from_s"] is not None, "the scrapes stopped working too"
    said = " ".join(summary["findings"])
    assert "got no answer (status 0)" in said and "/metrics stopped answering" in said, said


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_the_load_before_the_embedded_backend(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it: the backend lives in its own
    session, so players are never cut off by our own shutdown and counted as the target's drops."""
    out = tmp_path / "run"
    proc = _start("run", "smoke", "--duration", "40s", "--out", str(out), start_new_session=True)
    _wait_for_players(proc, 10)
    os.killpg(proc.pid, signal.SIGINT)
    output = _finish(proc)
    assert proc.returncode == 3, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["integrity"]["interrupted"] is True and summary["outcome"] == "not carried out"
    assert summary["ws"]["unexpected_disconnects"] == 0, summary["ws"]
    assert "NOT CARRIED OUT" in output and "interrupted" in output


@pytest.mark.slow
def test_a_backend_whose_websocket_connects_time_out_is_not_carried_out(tmp_path: Path) -> None:
    """Logins and joins answer; ``/connect`` takes the upgrade request and never answers it. Every
    user runs, no player is ever connected: load not reached, said with the connects' counts."""
    path = _scenario(
        tmp_path,
        '[scenario]\nname = "connects-time-out"\nduration = "8s"\n[load]\nusers = 4\nspawn_rate = 4\n'
        '[player]\nsession_length = "10m"\nconnect_timeout = "1s"\n'
        '[[gates]]\nexpr = "http./join.p95_ms < 250"\n',
    )
    out = tmp_path / "run"
    with hostile("connect_timeout") as url:
        output = _finish(_start("run", str(path), "--target", url, "--out", str(out)))
    assert "Traceback" not in output, output[-3000:]
    integrity = _integrity(out)
    summary = json.loads((out / "summary.json").read_text())
    timed_out = summary["ws"]["connect_failed"].get("timeout", 0)
    assert timed_out >= 4 and summary["ws"]["sessions_opened"] == 0, summary["ws"]
    # "Players" are connected sessions: four users ran, none was ever a player.
    assert integrity["peak_connected"] == 0 and summary["tick"]["peak_players"] == 0
    (stage,) = integrity["stages"]
    assert (stage["users"], stage["users_reached"], stage["peak_connected"]) == (4, 4, 0), stage
    reasons = " | ".join(integrity["reasons"])
    assert "load not reached: 4 of 4 planned users ran, but at most 0 of them were connected" in reasons, reasons
    assert f"{timed_out} WebSocket connects timed out" in reasons, reasons
    said = " ".join(summary["findings"])
    assert f"{timed_out} of {timed_out} WebSocket connects timed out" in said, said
    assert "NOT CARRIED OUT" in output and "PASS  http./join.p95_ms < 250" in output, output[-3000:]
    assert "load stage 1: 4 users planned, 4 users reached, 0 players connected" in output
    assert "4 users planned, 4 users reached, 0 players connected" in (out / "junit.xml").read_text()
    assert_clean(out)  # every timed-out connect was counted, none only logged
