"""A replay kind's integrity: a kind that began but never finished (it waits for a ticket to expire
longer than the run lasted) is not checked, so a short run cannot pass a backend whose tickets
never expire by leaving that kind out; a kind that cannot apply to the backend stays a note."""

from __future__ import annotations

from typing import Any

from loadtest.results.integrity import _probes


def judge(replay: dict[str, Any], **probes: Any) -> tuple[list[dict], list[str], list[str]]:
    reasons: list[str] = []
    notes: list[str] = []
    summary = {"replay": {"by_kind": {}, "skipped": {}, **replay}, "rate_limit": {"probe": None}}
    checks = _probes(summary, {"probes": {"replay_rate": 1.0, **probes}}, reasons, notes)
    return checks, reasons, notes


def test_a_kind_that_began_but_never_finished_is_not_checked_and_voids_the_run() -> None:
    checks, reasons, _ = judge(
        {
            "by_kind": {"ticket_reuse": {"attempts": 3, "rejected": 3, "accepted": 0}},
            "started": {"ticket_reuse": 3, "ticket_expired": 2},
        }
    )
    by_name = {c["probe"]: c for c in checks}
    assert by_name["replay ticket_reuse"]["checked"]
    expired = by_name["replay ticket_expired"]
    assert not expired["checked"] and expired["attempts"] == 0
    assert expired["why"] == "2 attempt(s) began but none finished before the run ended"
    assert reasons == [f"replay ticket_expired was not checked: {expired['why']}"]


def test_an_optional_unfinished_kind_is_a_note_and_an_inapplicable_one_too() -> None:
    _, reasons, notes = judge(
        {
            "skipped": {"jwt_expired:not_applicable_opaque_token": 1},
            "started": {"ticket_expired": 1, "jwt_expired": 1},
        },
        optional=["replay ticket_expired"],
    )
    assert reasons == []
    assert sorted(notes) == [
        "replay jwt_expired was not checked: skipped: not_applicable_opaque_token",
        "replay ticket_expired was not checked: 1 attempt(s) began but none finished before the run ended",
    ]


def test_while_the_run_goes_on_an_unfinished_kind_is_in_progress_not_undone() -> None:
    reasons: list[str] = []
    notes: list[str] = []
    replay = {"by_kind": {}, "skipped": {}, "started": {"ticket_expired": 1}}
    summary = {"replay": replay, "rate_limit": {"probe": None}}
    (check,) = _probes(summary, {"probes": {"replay_rate": 1.0}}, reasons, notes, ended=False)
    assert (check["checked"], check["why"]) == (False, "in progress")
    assert reasons == [] and notes == []
