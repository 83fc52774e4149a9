"""Server-side storms on any backend: triggered by a command or an HTTP request the scenario
describes, their effect measured on the players' side, their failures named with the exit code or
status, and their secrets (header values from the environment) kept out of the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from tests.locust_run import LOADTEST, ROOT

pytestmark = pytest.mark.slow
RESTART = ROOT / "tests" / "fakes" / "restart_game_server.py"


def _scenario(tmp_path: Path) -> Path:
    py, restart = json.dumps(sys.executable), json.dumps(str(RESTART))
    text = f"""
[scenario]
duration = "12s"
[load]
users = 6
[player]
session_length = "60s"

[[events]]  # a command that fails, and an endpoint that refuses: named, with the code (optional)
at = 1
optional = true
trigger = {{ kind = "command", argv = [{py}, "-c", "import sys; sys.exit(3)"] }}
[[events]]
at = 2
optional = true
trigger = {{ kind = "http", method = "GET", url = "/no-such-admin-endpoint", timeout = "5s" }}

[[events]]  # the game server restarts: a command (as `kubectl rollout restart` would be)
at = 3
window = "2s"
trigger = {{ kind = "command", argv = [{py}, {restart}], timeout = "10s" }}

[[events]]  # the team's own admin endpoint, its token taken from the environment
at = 6
window = "2s"
[events.trigger]
kind = "http"
url = "/admin/api/chaos"
headers = {{ Authorization = "Bearer ${{STORM_AUTH}}" }}
body = {{ action = "disconnect", fraction = 1.0, close_code = 1012 }}

[[events]]  # a restart that restarts nothing: not carried out
at = 9
window = "2s"
trigger = {{ kind = "command", argv = [{py}, "-c", "pass"] }}

"""
    path = tmp_path / "storms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_command_and_http_triggers_are_measured_and_their_failures_named(
    tmp_path: Path, start_backend: Callable[..., BackendProcess]
) -> None:
    backend = start_backend()
    out = tmp_path / "run"
    env = {**os.environ, "STORM_AUTH": backend.admin_token}
    env.pop("LOADTEST_ADMIN_TOKEN", None)  # no chaos-API storm here: the triggers carry their own
    proc = subprocess.run(
        [*LOADTEST, "run", str(_scenario(tmp_path)), "--target", backend.url, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    summary = json.loads((out / "summary.json").read_text())
    integrity = summary["integrity"]
    storms = {s["at_s"]: s for s in integrity["storms"]}
    context = proc.stdout[-3000:] + proc.stderr[-2000:]

    restart, http, noop, failing, refused = (storms[at] for at in (3.0, 6.0, 9.0, 1.0, 2.0))
    assert restart["trigger"] == "command" and restart["carried_out"], context
    assert restart["dropped"] >= 4 and restart["window_s"] == 2.0, context
    assert http["trigger"] == "http" and http["carried_out"] and http["dropped"] >= 4, context
    assert not noop["carried_out"] and noop["dropped"] == 0
    assert noop["why"] == "it dropped no session within 2 s of its command trigger"
    assert not failing["carried_out"] and failing["why"].endswith("exited with 3"), context
    assert not refused["carried_out"] and refused["why"].endswith("answered 404"), context

    # The no-op is a reason (exit 3, never PASSED); the optional failures are notes.
    assert proc.returncode == 3, context
    assert any("planned at 9 s was not carried out" in r for r in integrity["reasons"])
    assert len(integrity["reasons"]) == 1, integrity["reasons"]
    assert any("exited with 3" in n and "(optional)" in n for n in integrity["notes"])
    assert summary["reconnect"]["storms"] == 5 and summary["reconnect"]["storms_failed"] == 2
    assert "NOT CARRIED OUT" in proc.stdout

    # The header's secret came from the environment and went nowhere else.
    for path in out.rglob("*"):
        if path.is_file():
            assert backend.admin_token not in path.read_text(encoding="utf-8", errors="replace"), path
    assert backend.admin_token not in proc.stdout + proc.stderr
    assert "${STORM_AUTH}" in (out / "scenario.toml").read_text()
