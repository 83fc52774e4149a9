"""The load part of the integrity check: per stage (a run without stages is one) and per worker,
users planned against Locust users reached against players (connected sessions) reached, and
a reason in words that says where the load stopped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loadtest.collectors import generator, ticks
from loadtest.collectors.aggregates import Bucket
from loadtest.config.scenario import Stage
from loadtest.results.findings import findings
from loadtest.results.integrity import IntegritySection, check, load_lines
from loadtest.results.junit import write_junit
from loadtest.results.reduction import Reduction
from tests.unit.workers import T0, quiet_collector


def _run(seconds: list[dict[str, tuple[int, int, int]]], scenario: Any, ws: dict | None = None) -> dict[str, Any]:
    """Feed seconds of ``{worker: (users_planned, users, connected)}`` and check the plan."""
    collectors = {w: quiet_collector(w) for per in seconds for w in per}
    reduction = Reduction(tables=True)
    for i, per in enumerate(seconds):
        gen = Bucket()
        for worker, (planned, users, connected) in per.items():
            c = collectors[worker]
            c.sample(T0 + i, 1.0, users, users=users, users_planned=planned, connected=connected)
            for record in c.agg.drain(worker):
                gen.merge(record.bucket())
        players = Bucket(Counter({ticks.CONNECTED(): sum(c for _, _, c in per.values())}))
        reduction.add_second(T0 + i, {generator.NAME: gen, ticks.NAME: players})
    summary = reduction.sections()
    if ws is not None:
        summary["ws"] = {**summary["ws"], **ws}
    integrity = check(reduction, summary, {}, scenario)
    IntegritySection.model_validate(integrity)  # the documented shape
    return integrity


def _plan(users: int, workers: int = 2, stages: tuple[Stage, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(users=users, workers=workers, stages=stages, duration=5.0)


def test_a_run_that_reached_its_load_shows_it_per_worker_and_is_carried_out() -> None:
    seconds = [{"a": (5, 3, 2), "b": (5, 3, 3)}] + [{"a": (5, 5, 5), "b": (5, 5, 5)}] * 4
    integrity = _run(seconds, _plan(10))
    assert integrity["carried_out"], integrity["reasons"]
    (stage,) = integrity["stages"]
    assert (stage["users"], stage["users_reached"], stage["peak_connected"]) == (10, 10, 10)
    assert stage["per_worker"]["a"] == {"users_planned": 5, "users_reached": 5, "peak_connected": 5}
    assert load_lines(integrity) == [
        "load stage 1: 10 users planned, 10 users reached, 10 players connected",
        "  worker a: 5 users planned, 5 reached, 5 players connected",
        "  worker b: 5 users planned, 5 reached, 5 players connected",
    ]


def test_users_that_ran_but_never_connected_say_so_with_the_connects_counts() -> None:
    seconds = [{"a": (2, 2, 0), "b": (2, 2, 0)}] * 5
    ws = {"connect_failed": {"timeout": 7, "refused_503": 1}, "connect_failed_total": 8}
    integrity = _run(seconds, _plan(4), ws=ws)
    assert not integrity["carried_out"]
    (reason,) = integrity["reasons"]
    assert reason == (
        "load not reached: 4 of 4 planned users ran, but at most 0 of them were connected at once: "
        "7 WebSocket connects timed out, 1 WebSocket connects failed (refused_503 x1)"
    )
    assert integrity["peak_connected"] == 0 and integrity["stages"][0]["users_reached"] == 4


def test_users_locust_never_ran_are_told_from_users_that_never_connected() -> None:
    """A worker that ran only 1 of its 5 users: the generator fell short, not the target."""
    seconds = [{"a": (5, 5, 5), "b": (5, 1, 1)}] * 5
    (reason,) = _run(seconds, _plan(10))["reasons"]
    assert reason.startswith("load not reached: Locust ran at most 6 of 10 planned users"), reason


def test_each_stage_is_judged_over_its_own_seconds() -> None:
    stages = (Stage(3.0, 4, 4.0), Stage(3.0, 10, 4.0))
    # A stage's seconds run one past its end (the ramp's last second may land there).
    seconds = [{"a": (2, 2, 2), "b": (2, 2, 2)}] * 4 + [{"a": (5, 5, 3), "b": (5, 5, 3)}] * 3
    integrity = _run(seconds, _plan(10, stages=stages))
    first, second = integrity["stages"]
    assert (first["users"], first["users_reached"], first["peak_connected"]) == (4, 4, 4)
    assert (second["users"], second["users_reached"], second["peak_connected"]) == (10, 10, 6)
    assert second["per_worker"]["b"] == {"users_planned": 5, "users_reached": 5, "peak_connected": 3}
    (reason,) = integrity["reasons"]
    assert reason.startswith("load not reached in stage 2: 10 of 10 planned users ran, but at most 6 of them"), reason
    assert "between 3 s and 6 s" in reason


def test_a_run_recorded_before_users_were_sampled_is_judged_on_players_alone() -> None:
    reduction = Reduction(tables=True)
    for i in range(5):
        reduction.add_second(T0 + i, {ticks.NAME: Bucket(Counter({ticks.CONNECTED(): 3}))})
    integrity = check(reduction, reduction.sections(), {}, _plan(10, workers=1))
    (stage,) = integrity["stages"]
    assert stage["users_reached"] is None and stage["per_worker"] == {}
    assert any(r.startswith("load not reached: at most 3 of 10 planned players") for r in integrity["reasons"])
    assert load_lines(integrity)[0] == "load stage 1: 10 users planned, - users reached, 3 players connected"


def test_junit_s_integrity_case_carries_the_load_lines(tmp_path: Path) -> None:
    integrity = _run([{"a": (2, 2, 0), "b": (2, 2, 0)}] * 5, _plan(4))
    write_junit(tmp_path / "j.xml", "s", [], integrity=integrity)
    case = ET.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase")
    assert case is not None and case.find("error") is not None
    said = case.findtext("system-out") or ""
    assert "load stage 1: 4 users planned, 4 users reached, 0 players connected" in said
    assert "worker a: 2 users planned, 2 reached, 0 players connected" in said


def test_timed_out_connects_are_a_finding_of_their_own_with_counts() -> None:
    summary = {
        "ws": {"sessions_opened": 2, "connect_failed": {"timeout": 6, "refused_403": 1}, "connect_failed_total": 7},
        "integrity": {"peak_connected": 2},
    }
    said = findings(summary)
    assert (
        "6 of 9 WebSocket connects timed out: the target did not complete the upgrade within "
        "player.connect_timeout; at most 2 players were ever connected at once."
    ) in said
    assert "WebSocket connects failed: refused_403 x1." in said, "the other reasons keep their sentence"


def test_a_lost_worker_is_reported_with_its_users_and_open_sessions() -> None:
    seconds = [{"a": (5, 5, 5), "b": (5, 5, 5)}] * 3 + [{"a": (5, 5, 5)}] * 8
    integrity = _run(seconds, _plan(10))
    (lost,) = integrity["workers_lost"]
    assert lost == {"worker": "b", "last_seen_s": 2, "sessions": 5, "users": 5}
    assert "worker b was lost at 2 s with 5 users and 5 open sessions" in " | ".join(integrity["reasons"])


def test_the_next_stage_s_users_are_not_counted_in_the_one_before() -> None:
    """From a stage's end Locust asks for the next stage's users: they are that stage's, even
    though its players get one more second to finish connecting (the trial's "16 planned, 20 reached")."""
    stages = (Stage(3.0, 4, 4.0), Stage(3.0, 10, 4.0))
    seconds = [{"a": (2, 2, 2), "b": (2, 2, 2)}] * 3 + [{"a": (5, 4, 2), "b": (5, 4, 2)}] * 4
    first, second = _run(seconds, _plan(10, stages=stages))["stages"]
    assert (first["users"], first["users_reached"], first["peak_connected"]) == (4, 4, 4)
    assert first["per_worker"]["a"] == {"users_planned": 2, "users_reached": 2, "peak_connected": 2}
    assert second["per_worker"]["a"]["users_planned"] == 5
