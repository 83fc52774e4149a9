"""A network storm that drops nobody by design is carried out when the relay caught sessions
under it, at its own time: another storm of the same kind does not stand in for it."""

from __future__ import annotations

from collections import Counter

from loadtest.collectors import network
from loadtest.collectors.aggregates import Bucket
from loadtest.results.integrity import _storms
from loadtest.results.reduction import Reduction

T0 = 1_800_000_000


def _summary(*segments: tuple[float, str, int]) -> dict:
    return {"reconnect": {"by_storm": [{"at_s": at, "sides": [side], "dropped": n} for at, side, n in segments]}}


def _relay_caught(seconds: int, caught: dict[int, int], kind: str = "latency_spike") -> Reduction:
    """A run of ``seconds`` seconds in which the relay caught ``caught[s]`` sessions at second ``s``."""
    reduction = Reduction(tables=True)
    for s in range(seconds):
        counts = Counter({network.CAUGHT(kind): caught[s]}) if caught.get(s) else Counter()
        reduction.add_second(T0 + s, {network.NAME: Bucket(counts)})
    return reduction


def _judge(summary: dict, planned: list[dict], reduction: Reduction) -> tuple[list[dict], list[str]]:
    reasons: list[str] = []
    return _storms(summary, {"storms": planned}, reasons, [], reduction), reasons


def test_a_latency_spike_that_caught_sessions_is_carried_out() -> None:
    (storm,), reasons = _judge(
        _summary((5, "latency_spike", 0)), [{"at": 5, "side": "latency_spike"}], _relay_caught(10, {6: 4})
    )
    assert storm["carried_out"] and reasons == []


def test_a_latency_spike_that_caught_nothing_is_not() -> None:
    planned = [{"at": 5, "side": "latency_spike"}]
    (storm,), reasons = _judge(_summary((5, "latency_spike", 0)), planned, _relay_caught(10, {}))
    assert not storm["carried_out"] and "latency_spike-side storm" in reasons[0]


def test_a_second_storm_of_the_same_kind_is_not_carried_out_by_the_first_one_s_catch() -> None:
    planned = [{"at": 5, "side": "latency_spike"}, {"at": 20, "side": "latency_spike"}]
    summary = _summary((5, "latency_spike", 0), (20, "latency_spike", 0))
    (first, second), reasons = _judge(summary, planned, _relay_caught(30, {6: 4}))
    assert first["carried_out"] and not second["carried_out"]
    assert len(reasons) == 1 and "planned at 20 s" in reasons[0]


def test_a_client_storm_that_dropped_nobody_is_still_not_carried_out() -> None:
    planned = [{"at": 5, "side": "client"}]
    (storm,), _ = _judge(_summary((5, "client", 0)), planned, _relay_caught(10, {6: 4}, "client"))
    assert not storm["carried_out"]
