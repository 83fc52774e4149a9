"""`loadtest run` end to end: real scenario files, the embedded backend, real Locust, every artifact."""

from __future__ import annotations

import re
import signal
import statistics
import subprocess
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.locust_run import (
    LOADTEST,
    ROOT,
    assert_clean,
    loadtest,
    saturation,
    server_tick_rates,
    skip_if_the_box_decided,
    summary_of,
)

pytestmark = pytest.mark.slow


def test_smoke_passes_on_the_reference_backend_and_writes_every_artifact(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    # 20 s instead of its 30: room for the 10 s window of its last gate, the rest is the same scenario.
    done = loadtest("run", "smoke", "--out", str(out), "--duration", "20s")
    skip_if_the_box_decided(out, summary_of(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "smoke: PASSED" in done.stdout
    assert_clean(out)
    assert "[" in done.stdout and "players" in done.stdout, "progress lines while it ran"
    summary = summary_of(out)
    assert summary["schema_version"] == 3 and summary["outcome"] == "passed"
    assert summary["integrity"]["carried_out"] is True and summary["integrity"]["reasons"] == []
    assert summary["passed"] is True and summary["incomplete"] is False
    assert summary["gates"] and all(g["passed"] for g in summary["gates"])
    assert summary["ws"]["sessions_opened"] >= 20
    assert summary["replay"]["attempts"] > 0 and summary["replay"]["accepted"] == 0
    assert summary["cors"]["findings"] == []
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    # One case per gate, and one saying the run carried out its plan.
    assert int(suite.get("tests")) == len(summary["gates"]) + 1 and suite.get("failures") == "0"
    assert suite.get("errors") == "0"
    html = (out / "report.html").read_text()
    assert "PASSED" in html and "tick.p5_ratio" in html
    for name in ("aggregates.jsonl", "target_metrics.jsonl", "ticks.csv", "http.csv"):
        assert (out / "data" / name).exists(), name
    # Secrets never reach the run folder.
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".xml", ".log", ".csv", ".toml"):
            text = path.read_text(errors="replace")
            assert "LOADTEST_ADMIN_TOKEN" not in text and "jwt_secret" not in text.lower()


FAST_REPLAY = ("--users", "2", "--duration", "14s", "--set", "probes.replay_rate=2")


DEFECT_FINDINGS = [
    ("ticket-replay", "ticket_reuse", "Tickets can be replayed"),
    ("ticket-race", "ticket_race", "One ticket can open several sessions"),
    ("ticket-no-expiry", "ticket_expired", "Expired tickets are accepted"),
    ("jwt-alg-none", "jwt_alg_none", "Unsigned tokens (alg: none) are accepted"),
    ("jwt-expired-ok", "jwt_expired", "Expired tokens are accepted"),
]


def test_replay_attack_finds_each_defect_and_passes_on_a_correct_backend(tmp_path: Path) -> None:
    # Six independent runs, five against a backend of their own with one defect and one against a
    # correct backend with every kind; they mostly wait on the clock, so they run side by side.
    commands = {}
    for defect, kind, _ in DEFECT_FINDINGS:
        args = ["run", "replay-attack", "--defect", defect, "--out", str(tmp_path / defect), *FAST_REPLAY]
        commands[defect] = [*args, "--set", f'probes.replay_kinds=["{kind}"]']
    correct = tmp_path / "correct"
    commands["correct"] = ["run", "replay-attack", "--out", str(correct), "--users", "4", "--duration", "16s"]
    commands["correct"] += ["--set", "probes.replay_rate=4"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "cwd": ROOT}
    runs = {name: subprocess.Popen([*LOADTEST, *args], **pipes) for name, args in commands.items()}
    try:
        outputs = {name: proc.communicate(timeout=240)[0] for name, proc in runs.items()}
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    for defect, kind, words in DEFECT_FINDINGS:
        assert runs[defect].returncode == 1, (defect, outputs[defect][-3000:])
        summary = summary_of(tmp_path / defect)
        assert any(words in f for f in summary["findings"]), (defect, summary["findings"])
        gate = next(g for g in summary["gates"] if g["expression"] == "replay.accepted == 0")
        assert gate["passed"] is False, defect
        verdicts = summary["replay"]["by_kind"][kind]
        assert verdicts["attempts"] >= 10, (defect, verdicts)
        if kind == "ticket_race":
            # Timing decides a race; the probe must still find it in at least 9 of 10 tries.
            assert verdicts["accepted"] >= 0.9 * verdicts["attempts"], verdicts
        else:
            assert verdicts["accepted"] == verdicts["attempts"], (defect, verdicts)
    # A correct backend refuses every kind, and the scenario passes.
    assert runs["correct"].returncode == 0, outputs["correct"][-3000:]
    assert_clean(correct)
    replay = summary_of(correct)["replay"]
    assert len(replay["by_kind"]) == 8 and replay["accepted"] == 0


FAST_PROBE = (
    "--duration",
    "10s",
    "--set",
    "probes.rate_limit_steps=[5, 20, 40]",
    "--set",
    "probes.rate_limit_step_seconds=2",
)


@pytest.mark.parametrize("defect", [None, "no-rate-limit"])
def test_rate_limit_probe_scenario_verdict_follows_the_defect(defect: str | None, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = loadtest(
        "run", "rate-limit-probe", "--out", str(out), *FAST_PROBE, *(("--defect", defect) if defect else ())
    )
    summary = summary_of(out)
    assert_clean(out)
    probe = summary["rate_limit"]["probe"]
    if defect:
        assert done.returncode == 1, done.stdout[-3000:]
        assert any("is not rate limited" in f for f in summary["findings"]), summary["findings"]
        # What the probe measured says the same: every request of every step was let through.
        assert probe["enforced"] is False and probe["estimated_limit_per_s"] is None, probe
        assert all(step["accepted"] == step["sent"] for step in probe["steps"]), probe
    else:
        assert done.returncode == 0, done.stdout[-3000:]
        assert any("is rate limited from about" in f for f in summary["findings"]), summary["findings"]


FAST_RAMP = ("--set", "load.stages=[{duration=3, users=32, spawn_rate=16}, {duration=12, users=64, spawn_rate=16}]")
FULL_ROOM = 64


def _gauge_while_full(summary: dict, out: Path) -> tuple[list[float], list[float]]:
    """The backend's own tick-rate gauge as scraped during the run (its mean and its slowest room's
    rate over the last second), in a run whose room the harness filled."""
    assert summary["tick"]["peak_players"] == FULL_ROOM, summary["tick"]
    mean, low = server_tick_rates(out, stat="mean"), server_tick_rates(out)
    assert mean and low, "the backend's gauge was scraped while the room was full"
    return mean, low


@pytest.mark.xdist_group("heavy")
def test_tick_degradation_scenario_passes_on_a_correct_backend_and_agrees_with_its_gauge(tmp_path: Path) -> None:
    """Judged against the run's own truth: the backend's tick gauge and the generator's health.

    On a busy machine a correct backend can itself tick below the threshold; the harness must then
    say so too, and the test cannot tell a defect from the box, so it skips with the numbers.
    """
    out = tmp_path / "run"
    done = loadtest("run", "tick-degradation", "--out", str(out), *FAST_RAMP)
    summary = summary_of(out)
    if why := saturation(summary):
        pytest.skip(f"this machine is too busy to judge tick rates: {why}")
    assert_clean(out)
    tick = summary["tick"]
    onset = [f for f in summary["findings"] if f.startswith("Tick rate fell below")]
    mean, low = _gauge_while_full(summary, out)
    # The harness's rate and the server's own agree, whatever this machine did to both.
    assert abs(tick["p50_hz"] - statistics.median(mean)) <= 0.1 * tick["nominal_hz"], (tick, mean)
    server_low = min(low)
    if onset or tick["degradation"] is not None or tick["p5_hz"] < tick["threshold_hz"]:
        # The harness saw the correct backend sink: only the server's own gauge can excuse that.
        assert server_low < tick["threshold_hz"], ("a fall the server's gauge never showed", onset, tick)
        pytest.skip(f"the correct backend itself ticked at {server_low:.1f} Hz (its own gauge) on this busy machine")
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.xdist_group("heavy")
def test_slow_tick_reports_the_onset_and_abort_on_fail_stops_the_run_early(tmp_path: Path) -> None:
    """One run of the scenario against the slow-tick defect proves the fall is found (onset, players,
    p5 under the threshold, as the backend's own gauge confirms) and that a failing abort gate
    stops the run long before its planned 40 s."""
    out = tmp_path / "run"
    gate = 'gates=[{expr="tick.p5_hz >= 54", over="3s", abort_on_fail=true, delay="6s"}]'
    stages = "load.stages=[{duration=3, users=32, spawn_rate=16}, {duration=37, users=64, spawn_rate=16}]"
    done = loadtest(
        "run", "tick-degradation", "--defect", "slow-tick", "--out", str(out), "--set", stages, "--set", gate
    )
    summary = summary_of(out)
    if why := saturation(summary):
        pytest.skip(f"this machine is too busy to judge tick rates: {why}")
    assert_clean(out)
    assert done.returncode == 1, done.stdout[-3000:]
    tick = summary["tick"]
    onset = [f for f in summary["findings"] if f.startswith("Tick rate fell below")]
    assert onset and tick["degradation"] is not None and tick["degradation"]["players"] > 0, tick
    assert tick["degradation"]["p5_hz"] < tick["threshold_hz"] and tick["p5_hz"] < tick["threshold_hz"]
    # The server's own gauge confirms the fall (an aborted run is scraped only once or twice, too
    # few readings to compare its rate with the harness's p50 as the correct run does).
    mean, low = _gauge_while_full(summary, out)
    assert min(low) < tick["threshold_hz"] and min(mean) < tick["threshold_hz"], (tick, mean, low)

    assert "aborting" in done.stdout
    assert summary["aborted"] and "tick.p5_hz >= 54" in summary["aborted"]
    assert summary["incomplete"] is True
    assert tick["seconds"] < 30, "stopped long before the 40 s of stages ended"


def test_sigint_mid_run_still_writes_a_report_marked_incomplete_and_report_rebuilds_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*LOADTEST, "run", "smoke", "--duration", "60s", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        # Interrupt once the progress line shows sessions were opened: data was gathered by then.
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and not re.search(r"sessions\s+[1-9]", line):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 3, output[-3000:]
    assert "interrupted" in output
    summary = summary_of(out)
    assert summary["incomplete"] is True and summary["passed"] is False
    assert summary["ws"]["sessions_opened"] > 0, "what was gathered before the interrupt is kept"
    assert "INCOMPLETE" in (out / "report.html").read_text()
    assert ET.parse(out / "junit.xml").getroot().find("testsuite").get("errors") == "1"

    # `loadtest report` rebuilds everything from the saved data alone.
    gates = [g["value"] for g in summary["gates"]]
    for name in ("summary.json", "report.html", "junit.xml"):
        (out / name).unlink()
    rebuilt = loadtest("report", str(out), timeout=60)
    # Its verdict file gone, the rebuild cannot know it was judged: never "passed", not carried out.
    assert rebuilt.returncode == 3, rebuilt.stdout + rebuilt.stderr
    again = summary_of(out)
    assert again["incomplete"] is True
    assert [g["value"] for g in again["gates"]] == gates
    assert (out / "report.html").exists() and (out / "junit.xml").exists()


def test_usage_errors_exit_2_and_an_unreachable_target_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nduration = "5s"\n[load]\nusers = "many"\n')
    # Four independent invocations, each mostly Python starting up: side by side.
    with ThreadPoolExecutor(4) as pool:
        bad_file, unknown, unreachable, no_data = pool.map(
            lambda args: loadtest(*args),
            [
                ("run", str(bad)),
                ("run", "no-such-scenario"),
                ("run", "smoke", "--target", "http://127.0.0.1:9", "--out", str(tmp_path / "x")),
                ("report", str(tmp_path / "nothing-here")),
            ],
        )
    assert bad_file.returncode == 2
    assert f"{bad}: load.users" in bad_file.stderr and "Traceback" not in bad_file.stderr
    assert unknown.returncode == 2 and "bundled scenarios: " in unknown.stderr
    assert unreachable.returncode == 3 and "unreachable" in unreachable.stdout
    assert no_data.returncode == 2
