"""A network storm that drops nobody by design is carried out when the relay caught sessions."""

from __future__ import annotations

from loadtest.results.integrity import _storms


def _summary(dropped: int, caught: int) -> dict:
    return {
        "reconnect": {"by_storm": [{"at_s": 5, "sides": ["latency_spike"], "dropped": dropped}]},
        "network": {"faults": {"latency_spike": {"connections": caught}}} if caught else None,
    }


def test_a_latency_spike_that_caught_sessions_is_carried_out() -> None:
    reasons: list[str] = []
    settings = {"storms": [{"at": 5, "side": "latency_spike"}]}
    (storm,) = _storms(_summary(0, 4), settings, reasons, [])
    assert storm["carried_out"] and reasons == []


def test_a_latency_spike_that_caught_nothing_is_not() -> None:
    reasons: list[str] = []
    settings = {"storms": [{"at": 5, "side": "latency_spike"}]}
    (storm,) = _storms(_summary(0, 0), settings, reasons, [])
    assert not storm["carried_out"] and "latency_spike-side storm" in reasons[0]


def test_a_client_storm_that_dropped_nobody_is_still_not_carried_out() -> None:
    reasons: list[str] = []
    summary = {"reconnect": {"by_storm": [{"at_s": 5, "sides": ["client"], "dropped": 0}]}, "network": None}
    (storm,) = _storms(summary, {"storms": [{"at": 5, "side": "client"}]}, reasons, [])
    assert not storm["carried_out"]
