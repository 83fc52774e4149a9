"""Another team's backend of the same shape (tests/fakes/other_shape.py), driven with only ``[protocol]`` settings.

Its paths, field names, auth scheme and message names all differ from the reference backend's; it
ticks at 30 Hz, sends no welcome message, has no chaos endpoint and answers 429 with a whole-second
Retry-After and a body of its own. The bundled ``smoke`` scenario must pass against it unchanged
(step-named gates, tick ratios against the nominal rate its /metrics gauge states), our counts
must equal its own counters, a server-side storm must be set off by a command (it has no chaos
API) and measured by the players' drops, and a run that learns the nominal rate nowhere must say
so instead of judging against 60 Hz.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.other_shape import AUTH, PROTOCOL
from tests.locust_run import ROOT, assert_clean, loadtest, saturation, summary_of

FAKE = ROOT / "tests/fakes/other_shape.py"
SETS = [arg for key, value in PROTOCOL.items() for arg in ("--set", f"protocol.{key}={value}")]


@contextmanager
def other_shape(*args: str, pid: list[int] | None = None) -> Iterator[str]:
    """The fake's URL while it runs; its process id lands in ``pid`` when given (for a storm's command)."""
    fake = subprocess.Popen([sys.executable, str(FAKE), *args], stdout=subprocess.PIPE, text=True)
    try:
        line = fake.stdout.readline() if fake.stdout else ""
        assert "listening on " in line, f"the fake did not start: {line!r}"
        if pid is not None:
            pid.append(fake.pid)
        yield line.split("listening on ")[1].strip()
    finally:
        fake.terminate()
        fake.wait(10)


def _server(summary: dict, name: str) -> float:
    """The sum of the deltas of every sample of one of the fake's counters over the run."""
    delta = summary["target_metrics"]["delta"]
    return sum(v for k, v in delta.items() if k.split("{", 1)[0] == name)


def test_a_gate_on_a_step_this_protocol_lacks_is_a_scenario_error_with_close_names() -> None:
    """``http./join.*`` names no step once the join step is /api/v2/match: refused before any load."""
    proc = loadtest(
        "run", "smoke", "--target", "http://127.0.0.1:9", *SETS, "--set", 'gates=[{expr="http./join.p95_ms < 250"}]'
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "gates[0].expr" in proc.stderr and "join (/api/v2/match)" in proc.stderr
    assert "close names: http.join.p95_ms" in proc.stderr
    # The alias by this backend's own path, and the step name, are both accepted (the run then
    # fails to reach the closed port: exit 2 for that, after the gates were checked).
    for gate in ("http./api/v2/match.p95_ms < 250", "http.join.p95_ms < 250"):
        proc = loadtest("run", "smoke", "--target", "http://127.0.0.1:9", *SETS, "--set", f'gates=[{{expr="{gate}"}}]')
        assert "gates[0].expr" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_bundled_smoke_passes_on_a_30_hz_backend_of_another_shape(tmp_path: Path) -> None:
    # No signing key is given: the tokens are opaque, so the JWT kinds are "not applicable", not "no secret".
    out = tmp_path / "smoke"
    with other_shape("--seat-ttl", "3") as url:
        proc = loadtest("run", "smoke", "--target", url, *SETS, "--duration", "14s", "--users", "10", "--out", str(out))
    s = summary_of(out)
    if proc.returncode != 0 and (why := saturation(s)):
        pytest.skip(f"this machine is too busy to judge the run: {why}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "smoke: PASSED" in proc.stdout
    assert "nominal tick rate 30 Hz (from the target's /metrics)" in proc.stdout
    assert_clean(out)
    # Ratios against the nominal rate the target's own gauge states (no welcome, no ticks.nominal_hz).
    tick = s["tick"]
    assert (tick["nominal_hz"], tick["nominal_source"]) == (30.0, "target_metrics")
    assert tick["p5_ratio"] >= 0.9 and tick["p5_ratio"] == round(tick["p5_hz"] / 30.0, 4)
    assert tick["degradation"] is None
    # Steps, with this backend's paths beside them; the gates named the steps.
    assert {k: v["path"] for k, v in s["http"].items()} == {"token": AUTH, "join": "/api/v2/match"}
    assert {g["metric"] for g in s["gates"]} >= {"http.join.p95_ms", "tick.p5_ratio"}
    assert all(g["passed"] for g in s["gates"])
    # Every ticket the server refused, the replay probe saw refused, and none was accepted.
    refused = _server(s, "shape_seats_refused_total")
    assert refused > 0
    assert sum(s["replay"]["refused_ticket"].values()) == refused
    assert s["replay"]["accepted"] == 0
    assert s["ws"]["connect_failed"] == {} and s["cors"]["findings"] == []


SCENARIO = """
[scenario]
name = "other-shape-limits"
duration = "10s"

[load]
users = 8
spawn_rate = 8

[player]
session_length = "8s"
think_time = "0.5s"

[[gates]]
expr = "tick.p5_ratio >= 0.9"

[[gates]]
expr = "http./api/v2/auth.count > 0"

# No chaos API: the server-side storm is a command that restarts the game servers (SIGHUP here, as
# `kubectl rollout restart` would be elsewhere); its effect is what the players saw.
[[events]]
at = "4s"
window = "5s"
trigger = { kind = "command", argv = ["kill", "-HUP", "PID"], timeout = "5s" }

[protocol]
"""


@pytest.mark.slow
def test_without_a_nominal_rate_tick_verdicts_are_not_given_and_429s_equal_the_servers(tmp_path: Path) -> None:
    scenario = tmp_path / "limits.toml"
    out = tmp_path / "run"
    pid: list[int] = []
    # No gauge, no welcome, no ticks.nominal_hz; 8 players from one address meet a burst of 5.
    with other_shape("--no-gauge", "--auth-rate", "2", "--auth-burst", "5", pid=pid) as url:
        text = SCENARIO.replace('"PID"', f'"{pid[0]}"')
        scenario.write_text(text + "".join(f'{k} = "{v}"\n' for k, v in PROTOCOL.items()), encoding="utf-8")
        proc = loadtest("run", str(scenario), "--target", url, "--out", str(out))
    s = summary_of(out)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "nominal tick rate unknown: tick verdicts not checked" in proc.stdout
    assert_clean(out)
    tick = s["tick"]
    assert tick["ticks_received"] > 0 and tick["nominal_hz"] is None and tick["nominal_source"] is None
    assert tick["p5_ratio"] is None and tick["threshold_hz"] is None
    assert any("tick verdicts not checked: nominal tick rate unknown" in n for n in s["integrity"]["notes"])
    ratio, alias = s["gates"]
    assert not ratio["passed"] and "no data" in ratio["message"] and "nominal tick rate unknown" in ratio["message"]
    assert alias["passed"] and alias["message"].startswith("http.token.count = ")
    assert s["integrity"]["carried_out"] and "60" not in " ".join(s["findings"])
    # 429s: ours equal the server's own counter, and its whole-second Retry-After was honoured.
    ours = s["rate_limit"]["responses_429"].get("token", 0)
    assert ours > 0
    assert ours == _server(s, "shape_throttled_total")
    assert s["http"]["token"]["status"].get("429", 0) == ours
    assert s["rate_limit"]["retry_after_not_honoured"] == 0 and s["rate_limit"]["without_retry_after"] == {}
    assert s["ws"]["sessions_opened"] == _server(s, "shape_sessions_opened_total")
    # The command-triggered storm was carried out: the sessions the restart closed are the drops
    # the players saw in its window, and they came back.
    (storm,) = s["integrity"]["storms"]
    restarted = _server(s, "shape_sessions_restarted_total")
    assert storm["trigger"] == "command" and storm["carried_out"], storm
    assert restarted > 0 and storm["dropped"] == restarted, (storm, restarted)
    assert s["reconnect"]["recovered"] > 0
