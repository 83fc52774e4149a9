"""Short real Locust runs against a target that answers badly (tests/fakes/hostile_target.py).

Whatever the target sends, the run ends normally with its summary and report, the bad replies are
counted with their reasons, every other session's numbers survive, the reconnect policy paces the
retries, and no traceback reaches the log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from loadtest.config.settings import PlayerSettings
from tests.locust_run import ROOT, LocustResult, assert_clean, run_locust

pytestmark = pytest.mark.slow

FAKE = ROOT / "tests/fakes/hostile_target.py"
USERS = 5


@contextmanager
def hostile(mode: str) -> Iterator[str]:
    fake = subprocess.Popen([sys.executable, str(FAKE), "--mode", mode], stdout=subprocess.PIPE, text=True)
    try:
        line = fake.stdout.readline()
        assert "listening on " in line, f"the fake did not start: {line!r}"
        yield line.split("listening on ")[1].strip()
    finally:
        fake.terminate()
        fake.wait(10)


def _run(url: str, out: Path, *extra: str, run_time: str = "6s", env: dict[str, str] | None = None) -> LocustResult:
    result = run_locust(
        url,
        out,
        users=USERS,
        spawn_rate=USERS,
        run_time=run_time,
        env=env,
        extra=("--lt-session-length", "2", *extra),
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert_clean(result)
    assert (out / "summary.json").exists()
    return result


def _requests(url: str) -> dict[str, int]:
    return requests.get(url + "/fake/stats", timeout=5).json()["requests"]


SCENARIO = """
[scenario]
name = "hostile"
duration = "6s"

[load]
users = 5
spawn_rate = 5

[player]
session_length = "2s"

[[gates]]
expr = "tick.p50_hz >= 15"
"""


def test_a_tick_number_past_any_counter_is_a_counted_error_and_the_run_ends_normally(tmp_path: Path) -> None:
    """Once, one such tick stopped every session's per-second roll, then crashed the finish."""
    scenario = tmp_path / "hostile.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "run"
    with hostile("huge_tick") as url:
        done = subprocess.run(
            [sys.executable, "-m", "loadtest", "run", str(scenario), "--target", url, "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "hostile: PASSED" in done.stdout
    for name in ("summary.json", "report.html", "junit.xml"):
        assert (out / name).exists(), name
    assert "Traceback" not in (out / "locust.log").read_text() + done.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["protocol_errors"]["ws"].get("tick_out_of_range", 0) > 0
    # Every other tick still counts, and the per-second roll survived the bad one.
    assert s["tick"]["ticks_received"] > USERS * 20
    assert 15 <= s["tick"]["p50_hz"] <= 25
    assert "error" not in s["ws"]["ended"]


def test_a_timestamp_that_is_no_time_is_a_counted_error_not_a_lost_session(tmp_path: Path) -> None:
    with hostile("bad_ts") as url:
        result = _run(url, tmp_path / "run")
    s = result.summary
    assert s["protocol_errors"]["ws"].get("ts_out_of_range", 0) > 0
    assert "error" not in s["ws"]["ended"], s["ws"]["ended"]
    assert s["ws"]["unexpected_disconnects"] == 0
    assert s["tick"]["ticks_received"] > USERS * 20


def test_a_reply_nested_past_any_sane_depth_is_counted_and_retried_by_the_policy(tmp_path: Path) -> None:
    with hostile("deep_token") as url:
        result = _run(url, tmp_path / "run")
        token_requests = _requests(url).get("/request_token", 0)
    s = result.summary
    errors = s["protocol_errors"]["http"]
    assert errors.get("/request_token:too_deep", 0) > 0
    # The exponential policy (1 s, x2) allows about four attempts per player in 6 s; a hot loop
    # made over a thousand.
    assert USERS <= token_requests <= USERS * 6, token_requests
    assert errors["/request_token:too_deep"] == token_requests
    assert s["http"], "Locust's own tables saw the failed requests"


def test_a_refusal_nested_past_any_sane_depth_is_a_counted_refusal(tmp_path: Path) -> None:
    with hostile("deep_refusal") as url:
        result = _run(url, tmp_path / "run")
        joins = _requests(url).get("/join", 0)
    failed = result.summary["ws"]["connect_failed"]
    assert failed.get("refused_403", 0) == joins > 0, failed
    assert joins <= USERS * 6, joins


def test_a_reply_that_drips_is_cut_at_the_step_deadline(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(PlayerSettings(connect_timeout=1.5).to_json(), encoding="utf-8")
    with hostile("drip_token") as url:
        result = _run(url, tmp_path / "run", run_time="7s", env={"LOADTEST_SETTINGS": str(settings)})
        token_requests = _requests(url).get("/request_token", 0)
    errors = result.summary["protocol_errors"]["http"]
    assert errors.get("/request_token:deadline_exceeded", 0) >= USERS * 2, errors
    assert token_requests <= USERS * 6, token_requests


def test_jwt_probes_are_not_applicable_to_opaque_tokens(tmp_path: Path) -> None:
    kinds = ("jwt_alg_none", "jwt_bad_signature", "jwt_expired", "jwt_wrong_audience", "ticket_forged")
    options = [arg for kind in kinds for arg in ("--lt-replay-kinds", kind)]
    with hostile("opaque") as url:
        result = _run(url, tmp_path / "run", "--lt-replay-rate", "4", *options)
    replay = result.summary["replay"]
    skipped = replay["skipped"]
    for kind in ("jwt_alg_none", "jwt_bad_signature", "jwt_expired"):
        assert skipped.get(f"{kind}:not_applicable_opaque_token", 0) > 0, skipped
    assert not any(key.endswith(":error") for key in skipped), skipped
    # The kinds that do apply still ran and got their verdict.
    assert json.dumps(replay).count("ticket_forged") > 0
    assert "DecodeError" not in (tmp_path / "run" / "summary.json").read_text()
