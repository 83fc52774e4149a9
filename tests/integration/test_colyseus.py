"""The Colyseus adapter against a real Colyseus 0.18 server (tests/targets/colyseus) on loopback.

One server for the module; three short ``loadtest run`` processes (the storm pair in parallel)
that each check several things. The server patches every 40 ms rather than Colyseus's default 50,
so a rate that matches it was measured, not assumed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.adapters.colyseus import decode_error, join_token, room_data
from loadtest.config.scenario import ScenarioError, load
from tests.colyseus_target import ColyseusServer, TargetUnavailable
from tests.conftest import require
from tests.locust_run import LOADTEST, ROOT, assert_clean, summary_of

PATCH_MS = 40
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="module")
def colyseus() -> Iterator[ColyseusServer]:
    server = ColyseusServer(patch_ms=PATCH_MS, seat_seconds=2, reconnect_seconds=10)
    try:
        server.start()
    except TargetUnavailable as exc:
        # Node 22 and Colyseus come from the npm registry (about 217 MB, cached once).
        require(f"the Colyseus test target cannot be installed or started here: {exc}")
    try:
        yield server
    finally:
        server.stop()


def run_args(server: ColyseusServer, scenario: str, out: Path, *extra: str) -> list[str]:
    return [
        *LOADTEST, "run", str(SCENARIOS / scenario), "--target", server.url, "--out", str(out),
        "--set", f"protocol.patch_rate={PATCH_MS}ms", *extra,
    ]  # fmt: skip


def test_frames_and_scenario_keys_are_read_as_colyseus_writes_them(tmp_path: Path) -> None:
    # Bytes as a Colyseus 0.18 server sent them (ERROR numbers are little-endian, unlike msgpack).
    assert decode_error(b"\x0b\xcd\x0c\x02\xb9seat reservation expired.") == (524, "seat reservation expired.")
    assert join_token(b"\x0a\x096czHPxTfV\x06schema") == "6czHPxTfV"
    assert room_data("echo", {"a": 1}) == b"\x0d\xa4echo\x81\xa1a\x01"

    bad = tmp_path / "bad.toml"
    cases = [
        ('[protocol]\nkind = "colyseus"\n', "protocol.room", "required"),
        ('[protocol]\nkind = "colyseus"\nroom = "a"\nmethod = "steal"\n', "protocol.method", "joinOrCreate"),
        ('[protocol]\nkind = "colyseus"\nroom = "a"\noptions = 3\n', "protocol.options", "table"),
        ('[protocol]\nkind = "colyseus"\nroom = "a"\ntoken_path = "/x"\n', "protocol.token_path", "unknown key"),
        ('[protocol]\nkind = "nope"\n', "protocol.kind", "colyseus"),
        ("[probes]\nseat_hoarding = 5\n", "probes.seat_hoarding", "only by: colyseus"),
    ]
    for body, key, words in cases:
        target = "" if "seat_hoarding" in body else '[target]\nurl = "http://127.0.0.1:1"\n'
        bad.write_text(f'[scenario]\nduration = "5s"\n{target}{body}')
        with pytest.raises(ScenarioError) as err:
            load(bad)
        assert err.value.key == key and words in str(err.value) and str(bad) in str(err.value), str(err.value)
    bad.write_text('[scenario]\nduration = "5s"\n[protocol]\nkind = "colyseus"\nroom = "a"\n')
    with pytest.raises(ScenarioError, match=r"target\.url: required for protocol kind 'colyseus'"):
        load(bad)
    scenario = load(SCENARIOS / "colyseus-smoke.toml", [("protocol.room", "other")])
    assert scenario.settings.protocol_options["room"] == "other"
    assert scenario.settings.nominal_tick_rate == 20.0  # from patch_rate = "50ms"


@pytest.mark.slow
def test_smoke_measures_the_patch_rate_and_every_replay_and_limit_probe(
    colyseus: ColyseusServer, tmp_path: Path
) -> None:
    out = tmp_path / "smoke"
    args = run_args(colyseus, "colyseus-smoke.toml", out, "--duration", "10s")
    args += ["--set", "protocol.seat_reservation_timeout=2"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_clean(out)
    s = summary_of(out)
    nominal = 1000 / PATCH_MS
    tick = s["tick"]
    assert tick["nominal_hz"] == nominal
    assert abs(tick["p50_hz"] - nominal) <= 0.1 * nominal, tick
    assert tick["ticks_received"] > 10 * 5 * nominal * 0.8  # 10 players, at least ~5 s each
    assert tick["lag_p99_ms"] is None  # Colyseus sends no server clock: no lag is invented
    assert tick["input_rtt_p50_ms"] is not None  # PING round trips
    assert s["ws"]["sessions_opened"] >= 10 and s["ws"]["unexpected_disconnects"] == 0
    assert s["protocol_errors"]["total"] == 0

    replay = s["replay"]
    kinds = ("ticket_reuse", "ticket_race", "ticket_expired", "ticket_forged", "reconnect_token_reuse")
    for kind in (*kinds, "jwt_alg_none", "jwt_bad_signature"):
        assert replay["by_kind"].get(kind, {}).get("rejected", 0) >= 1, (kind, replay)
    assert replay["accepted"] == 0 and replay["skipped"] == {}, replay
    assert set(replay["refused_ticket"]) == {"status_524"}  # ERROR 524 frames, not HTTP statuses

    rl = s["rate_limit"]
    assert rl["probe"]["enforced"] is False and rl["probe"]["endpoint"] == "/matchmake/joinOrCreate/arena"
    assert rl["seat_hoarding"]["granted"] == rl["seat_hoarding"]["asked"] == 50
    assert any("is not rate limited" in f for f in s["findings"]), s["findings"]
    assert any(f.startswith("Seat hoarding: one token took all 50") for f in s["findings"]), s["findings"]
    assert s["passed"] is True

    # Reservations and reconnection tokens never reach the run folder.
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".html", ".xml", ".log", ".csv", ".toml", ".jsonl"):
            text = path.read_text(errors="replace")
            assert "reconnectionToken=" not in text and "sessionId=" not in text, path


@pytest.mark.slow
def test_storm_recovers_by_reconnection_token_and_by_matchmaking_again(
    colyseus: ColyseusServer, tmp_path: Path
) -> None:
    resume_out, rematch_out = tmp_path / "resume", tmp_path / "rematch"
    runs = [
        subprocess.Popen(run_args(colyseus, "colyseus-storm.toml", resume_out, "--users", "10"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT),
        subprocess.Popen(run_args(colyseus, "colyseus-storm.toml", rematch_out, "--users", "10",
                                  "--set", "protocol.room=arena_norc"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT),
    ]  # fmt: skip
    try:
        outputs = [proc.communicate(timeout=90)[0] for proc in runs]
    finally:
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    for proc, output in zip(runs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    for out in (resume_out, rematch_out):
        assert_clean(out)

    resumed = summary_of(resume_out)["reconnect"]
    assert resumed["storms"] == 2 and resumed["dropped"] == 15  # half of 10, then all 10
    assert resumed["recovered"] == resumed["dropped"] and resumed["gave_up"] == 0
    assert resumed["resumed"] == resumed["dropped"] and resumed["resume_refused"] == 0

    rematched = summary_of(rematch_out)
    rc = rematched["reconnect"]
    assert rc["dropped"] == 15 and rc["recovered"] == 15 and rc["gave_up"] == 0
    assert rc["resumed"] == 0 and rc["resume_refused"] == 15  # the room holds no seat: matchmake again
    assert rematched["ws"]["connect_failed"] == {"error_524_expired": 15}
