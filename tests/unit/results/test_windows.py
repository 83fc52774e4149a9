"""Sliding windows judged in one streaming pass equal windows computed one by one, in bounded memory."""

from __future__ import annotations

import random

import pytest

from loadtest.collectors import generator, http, ticks
from loadtest.collectors.aggregates import Bucket
from loadtest.results.gates import flatten, resolve
from loadtest.results.reduction import Reduction
from loadtest.results.windows import Windows

METRICS = ("tick.p5_hz", "tick.peak_players", "tick.degradation.players", "http./join.p95_ms", "tick.p5_ratio")


def _second(rng: random.Random, second: int) -> dict[str, Bucket]:
    tick, gen, web = Bucket(), Bucket(), Bucket()
    slow = 40 <= second % 100 < 60  # a stretch of degraded seconds
    players = rng.randint(5, 40)
    tick.counts[ticks.CONNECTED()] = players
    for _ in range(players):
        tick.observe(ticks.RATE(), (rng.gauss(45, 2) if slow else rng.gauss(60, 0.5)) * 100)
    gen.counts[generator.SECONDS()] = 1
    if rng.random() < 0.05:
        gen.counts[generator.SATURATED()] = 1
    web.counts[http.REQUESTS("/join")] = 3
    for _ in range(3):
        web.observe(http.LATENCY("/join"), rng.expovariate(1 / 20_000))
    out = {ticks.NAME: tick, generator.NAME: gen, http.NAME: web}
    if rng.random() < 0.1:
        del out[http.NAME]  # a second without HTTP
    return out


def _brute_force(seconds: dict[int, dict[str, Bucket]], width: int, settings: dict) -> list[dict]:
    """The definition: every window start from the first second, a fifth of a window apart."""
    first, last = min(seconds), max(seconds)
    step = max(1, width // 5)
    out = []
    for start in range(first, max(first, last - width + 1) + 1, step):
        reduction = Reduction(settings=settings)
        for s in sorted(seconds):
            if start <= s < start + width:
                reduction.add_second(s, seconds[s])
        flat = flatten(reduction.sections())
        out.append({m: flat.get(resolve(m, flat)) for m in METRICS})  # a path names its step
    return out


@pytest.mark.parametrize("width", [1, 7, 10, 13, 60])
def test_streaming_windows_equal_the_windows_computed_one_by_one(width: int) -> None:
    rng = random.Random(width)
    # Gaps in the seconds too: a window is a span of time, not a count of records.
    seconds = {s: _second(rng, s) for s in range(1000, 1300) if rng.random() > 0.08}
    settings = {"nominal_tick_rate": 60}
    windows = Windows(width, METRICS, settings)
    main = Reduction(settings=settings)
    most_blocks = 0
    for s in sorted(seconds):
        facts = main.add_second(s, seconds[s])
        windows.add_second(s, seconds[s], facts)
        most_blocks = max(most_blocks, len(windows._blocks))
    windows.finish()
    assert windows.values == _brute_force(seconds, width, settings)
    assert any(v["http./join.p95_ms"] is not None for v in windows.values)  # read from the join step
    if width >= ticks.ONSET_HOLD:  # the degraded stretch shows in some window (the test can fail)
        assert any(v["tick.degradation.players"] for v in windows.values)
    # Bounded: never more blocks than one window holds (plus the one filling).
    assert most_blocks <= windows.width // windows.block + 1


def test_a_run_shorter_than_its_window_is_judged_on_the_one_window_it_has() -> None:
    rng = random.Random(3)
    seconds = {s: _second(rng, s) for s in range(50, 58)}
    windows = Windows(60, METRICS)
    for s in sorted(seconds):
        windows.add_second(s, seconds[s])
    windows.finish()
    assert windows.values == _brute_force(seconds, 60, {})
    assert len(windows.values) == 1


def test_windows_keep_only_the_collectors_their_gates_read() -> None:
    assert Windows(60, ["tick.p5_hz"]).full == {ticks.NAME}
    assert Windows(60, ["tick.p5_hz"]).collectors == {ticks.NAME, generator.NAME}  # saturated seconds
    assert Windows(60, ["replay.accepted"]).collectors == {"replay"}
