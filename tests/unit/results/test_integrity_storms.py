"""A storm's integrity: a failed trigger is not carried out with its status or exit code, a trigger
that dropped no one within its window is not carried out, an optional one is a note, and storms
set off by the chaos API keep their old judgement."""

from __future__ import annotations

from typing import Any

from loadtest.results.integrity import _storms


def storm(at: float, trigger: str = "chaos", **extra: Any) -> dict[str, Any]:
    return {"at": at, "side": "server", "trigger": {"kind": trigger}, "window": 3.0, **extra}


def segment(at: int, dropped: int) -> dict[str, Any]:
    return {"at_s": at, "sides": ["server"], "dropped": dropped}


def judge(planned: list[dict], by_storm: list[dict], failures: list[dict]) -> tuple[list[dict], list[str], list[str]]:
    reasons: list[str] = []
    notes: list[str] = []
    summary = {"reconnect": {"by_storm": by_storm, "storm_failures": failures}}
    return _storms(summary, {"storms": planned}, reasons, notes), reasons, notes


def test_a_failed_trigger_names_its_code_and_voids_the_run() -> None:
    checks, reasons, _ = judge(
        [storm(5, "command")], [segment(5, 4)], [{"at_s": 5.0, "why": "command 'docker restart g' exited with 1"}]
    )
    (check,) = checks
    assert not check["carried_out"] and check["trigger"] == "command" and check["window_s"] == 3.0
    assert check["why"] == "its command trigger failed: command 'docker restart g' exited with 1"
    assert reasons == [
        "the server-side storm planned at 5 s was not carried out: its command trigger failed: "
        "command 'docker restart g' exited with 1"
    ]


def test_a_trigger_that_dropped_no_one_is_not_carried_out_and_optional_is_a_note() -> None:
    checks, reasons, notes = judge(
        [storm(5, "http"), storm(9, "command", optional=True), storm(12, "http")],
        [segment(5, 0), segment(9, 0), segment(12, 7)],
        [],
    )
    assert [c["carried_out"] for c in checks] == [False, False, True]
    assert checks[0]["why"] == "it dropped no session within 3 s of its http trigger"
    assert len(reasons) == 1 and "planned at 5 s" in reasons[0]
    assert len(notes) == 1 and "planned at 9 s" in notes[0] and notes[0].endswith("(optional)")
    assert checks[2]["dropped"] == 7, "without per-second tables, the drops up to the next storm"


def test_chaos_storms_are_judged_as_before() -> None:
    checks, reasons, _ = judge([{"at": 5, "side": "server"}, {"at": 20, "side": "server"}], [segment(5, 3)], [])
    assert checks[0] == {
        "at_s": 5.0,
        "side": "server",
        "carried_out": True,
        "dropped": 3,
        "why": None,
        "trigger": "chaos",
        "window_s": None,
    }
    assert checks[1]["why"].startswith("it was not set off") and len(reasons) == 1
