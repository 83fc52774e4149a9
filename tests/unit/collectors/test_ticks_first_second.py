"""A session's first, partial second never yields a tick rate: a few ticks' server timestamps
are noise (a 30 Hz server once read as 36 Hz there)."""

from __future__ import annotations

import pytest

from loadtest.collectors.aggregates import merge_records, percentile
from loadtest.collectors.ticks import RATE, TickCollector


def test_the_first_partial_second_is_not_measured_and_the_next_full_one_is() -> None:
    c = TickCollector(estimate_offset=False)
    s = c.open()
    # Joined 0.6 s into second 200 of a 30 Hz server whose timestamps jitter by a few ms.
    tick, t = 1, 200.6
    jitter = [0.004, -0.003, 0.005, -0.004]
    for second in (200, 201, 202):
        while t < second + 1:
            ts = t + jitter[tick % 4]
            c.on_tick(s, tick, ts, 0, t + 0.002, int(t))
            tick, t = tick + 1, t + 1 / 30
        c.roll(second, 1)
    buckets = merge_records(c.agg.drain("w"))["ticks"]
    assert RATE() not in buckets[200].hists
    for second in (201, 202):
        assert percentile(buckets[second].hists[RATE()], 50) / 100 == pytest.approx(30, abs=0.6)
