"""Findings: each rule speaks only when its part of the summary has something to say."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.results.findings import findings


def only(summary: dict[str, Any]) -> str:
    (sentence,) = findings(summary)
    return sentence


def test_a_quiet_run_has_nothing_to_say() -> None:
    quiet = {
        "replay": {"by_kind": {"ticket_reuse": {"attempts": 5, "rejected": 5, "accepted": 0}}},
        "tick": {"degradation": None, "missed_ticks": 0},
        "reconnect": {"dropped": 0, "recovered": 0},
        "rate_limit": {"responses_429": {}},
        "ws": {"unexpected_disconnects": 0, "connect_failed": {}},
        "protocol_errors": {"http": {}, "ws": {}},
        "cors": {"findings": []},
        "generator": {"seconds_saturated": 0},
        "run": {"tls_verification": "on"},
    }
    assert findings(quiet) == []
    assert findings({}) == []


@pytest.mark.parametrize(
    ("kind", "words"),
    [("ticket_reuse", "Tickets can be replayed"), ("jwt_alg_none", "Unsigned tokens (alg: none) are accepted")],
)
def test_an_accepted_replay_names_the_hole_and_the_count(kind: str, words: str) -> None:
    sentence = only({"replay": {"by_kind": {kind: {"attempts": 4, "accepted": 3}}}})
    assert sentence.startswith(words) and "3 of 4" in sentence


def test_an_unknown_replay_kind_is_still_reported() -> None:
    assert "Brand_new_hole" in only({"replay": {"by_kind": {"brand_new_hole": {"attempts": 1, "accepted": 1}}}})


def test_a_tick_onset_says_when_at_how_many_players_and_against_what() -> None:
    tick = {
        "degradation": {"onset_second": 0, "players": 40, "p5_hz": 41.26},
        "threshold_hz": 54.0,
        "nominal_hz": 60.0,
        "missed_ticks": 0,
    }
    sentence = only({"tick": tick})
    assert sentence.startswith("Tick rate fell below 54 Hz at 40 players")
    assert "p5 41.3 Hz" in sentence and "00:00:00 UTC" in sentence and "nominal 60 Hz" in sentence


def test_missed_ticks_are_gaps_in_the_servers_numbers() -> None:
    assert only({"tick": {"missed_ticks": 7}}).startswith("7 ticks never arrived")


def test_players_that_did_not_come_back_are_counted_and_full_recovery_is_said_too() -> None:
    lost = findings({"reconnect": {"dropped": 10, "recovered": 7, "gave_up": 2}})
    assert lost == [
        "3 of 10 dropped players did not get back into a game.",
        "2 players gave up reconnecting after their last attempt.",
    ]
    full = only({"reconnect": {"dropped": 5, "recovered": 5, "recovery_p95_s": 1.25, "recovery_max_s": 2.0}})
    assert full.startswith("All 5 dropped players recovered") and "p95 1.2 s" in full


def test_rate_limit_probe_verdicts_both_ways() -> None:
    enforced = {"enforced": True, "endpoint": "/join", "estimated_limit_per_s": 5.0, "limited_from_rate": 10.0}
    assert "/join is rate limited from about 5 requests/s" in only({"rate_limit": {"probe": enforced}})
    open_door = {"enforced": False, "endpoint": "/request_token", "steps": [{"offered_rate": 5}, {"offered_rate": 40}]}
    assert only({"rate_limit": {"probe": open_door}}) == (
        "/request_token is not rate limited: every request up to 40/s was accepted."
    )


def test_429s_met_and_retry_after_broken_are_each_reported() -> None:
    said = findings(
        {
            "rate_limit": {
                "responses_429": {"/join": 3, "/request_token": 1},
                "retry_after_not_honoured": 2,
                "without_retry_after": {"/join": 1},
            }
        }
    )
    assert said[0] == "Players met 4 rate-limit responses (429) during the run (/join 3, /request_token 1)."
    assert said[1:] == [
        "Retry-After was not honoured 2 times.",
        "1 rate-limit responses carried no Retry-After header.",
    ]


def test_lost_sessions_without_a_storm_are_a_finding_but_not_with_one() -> None:
    assert "3 sessions were lost" in only({"ws": {"unexpected_disconnects": 3}})
    assert findings({"ws": {"unexpected_disconnects": 3}, "reconnect": {"storms": 1}}) == []


def test_protocol_errors_and_failed_connects_are_summed() -> None:
    said = findings(
        {"ws": {"connect_failed": {"closed": 2}}, "protocol_errors": {"http": {"/join:bad": 2}, "ws": {"bad_tick": 1}}}
    )
    assert said == [
        "WebSocket connects failed: closed x2.",
        "3 replies or messages broke the protocol (see protocol_errors).",
    ]


def test_a_saturated_generator_and_an_insecure_run_discount_the_numbers() -> None:
    assert "saturated for 4 s" in only({"generator": {"seconds_saturated": 4}})
    assert "not verified" in only({"run": {"tls_verification": "off (insecure)"}})


def test_cors_and_seat_hoarding() -> None:
    cors = {"findings": [{"finding": "refused_origin_allowed", "origin": "https://evil.example", "path": "/join"}]}
    assert only({"cors": cors}) == "CORS: refused origin allowed for https://evil.example on /join."
    hoard = {"asked": 50, "granted": 50, "rooms": 2, "endpoint": "/matchmake", "stopped_by": None}
    assert only({"rate_limit": {"seat_hoarding": hoard}}).startswith("Seat hoarding: one token took all 50")
    stopped = {**hoard, "granted": 12, "stopped_by": "HTTP 429"}
    assert "12 of 50" in only({"rate_limit": {"seat_hoarding": stopped}})


def test_a_race_is_told_from_reuse() -> None:
    from loadtest.results.findings import findings as sentences

    def summary(reuse_accepted: int) -> dict:
        by_kind = {
            "ticket_reuse": {"attempts": 4, "rejected": 4 - reuse_accepted, "accepted": reuse_accepted},
            "ticket_race": {"attempts": 4, "rejected": 0, "accepted": 4},
        }
        return {"replay": {"by_kind": by_kind}}

    race_only = " ".join(sentences(summary(0)))
    assert "check-then-consume race" in race_only
    with_reuse = " ".join(sentences(summary(4)))
    assert "reuse, not a race" in with_reuse and "check-then-consume" not in with_reuse


def test_unanswered_requests_and_a_silent_target_are_said_with_counts_and_times() -> None:
    from loadtest.results.findings import findings as sentences

    summary = {
        "http": {
            "/join": {"count": 64, "status": {"200": 20, "0": 44}},
            "/request_token": {"count": 9, "status": {"200": 9}},
        },
        "protocol_errors": {"http": {"/join:deadline_exceeded": 3}},
        "integrity": {"target_silent_from_s": 12},
        "target_metrics": {"scraped": True, "failing_from_s": 13, "failed_scrapes": 4},
    }
    said = " ".join(sentences(summary))
    assert "/join: 44 got no answer (status 0) and 3 timed out of 64 requests." in said
    assert "/request_token" not in said
    assert "stopped answering at 12 s" in said and "/metrics stopped answering at 13 s (4 scrapes failed)" in said
