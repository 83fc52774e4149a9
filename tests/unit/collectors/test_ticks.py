"""Tick math: rates from the server's own tick numbers and clock, gaps, input round trips, onset."""

from __future__ import annotations

import pytest

from loadtest.collectors.aggregates import merge_records, percentile
from loadtest.collectors.ticks import TickCollector, TickSecond, degradation_onset


class TestTickMath:
    def _feed(self, collector: TickCollector, rate: float, seconds: int, *, start_tick: int = 1) -> None:
        state = collector.open()
        tick, t = start_tick, 1000.0
        for second in range(seconds):
            while t < 1000.0 + second + 1:
                collector.on_tick(state, tick, t, 0, t + 0.002, int(t))
                tick += 1
                t += 1 / rate
            collector.roll(int(t) - 1, 1)

    def test_server_rate_is_measured_from_tick_numbers_and_timestamps(self) -> None:
        c = TickCollector(estimate_offset=False)
        self._feed(c, 60.0, 5)
        buckets = merge_records(c.agg.drain("w"))["ticks"]
        measured = [b.hists["tick_rate_centihz"] for b in buckets.values() if "tick_rate_centihz" in b.hists]
        rates = [percentile(h, 50) / 100 for h in measured]
        assert len(rates) == 4, "the session's first (partial) second yields no rate"
        assert all(abs(r - 60.0) < 0.1 for r in rates)

    def test_a_session_joining_late_in_a_second_is_not_read_as_a_slow_server(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        c.on_tick(s, 1, 100.98, 0, 100.99, 100)  # joined at the end of second 100: one tick
        c.roll(100, 1)
        for i in range(2, 62):
            t = 100.98 + (i - 1) / 60
            c.on_tick(s, i, t, 0, t + 0.001, int(t))
        c.roll(101, 1)
        buckets = merge_records(c.agg.drain("w"))["ticks"]
        assert "tick_rate_centihz" not in buckets[100].hists
        assert percentile(buckets[101].hists["tick_rate_centihz"], 0) / 100 == pytest.approx(60, abs=0.1)

    def test_a_stalled_server_reads_as_zero_after_ticking(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        for i in range(1, 61):
            c.on_tick(s, i, 100 + i / 61, 0, 100 + i / 61, 100)
        c.roll(100, 1)
        c.roll(101, 1)  # a whole second without a tick
        buckets = merge_records(c.agg.drain("w"))["ticks"]
        assert percentile(buckets[101].hists["tick_rate_centihz"], 50) <= 1

    def test_gaps_in_tick_numbers_are_missed_ticks(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        for tick in (1, 2, 5, 6, 10):
            c.on_tick(s, tick, 100 + tick / 60, 0, 100 + tick / 60, 100)
        assert c.agg.bucket(100).counts["missed"] == 2 + 3

    def test_input_round_trip_is_matched_by_ack(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        s.sent_input(1, 50.0)
        s.sent_input(2, 50.05)
        c.on_tick(s, 1, 50.1, 2, 50.12, 50)
        rtt = c.agg.bucket(50).hists["input_rtt_us"]
        assert rtt.get_total_count() == 1
        assert percentile(rtt, 50) == pytest.approx(70_000, rel=0.02)

    def test_onset_needs_three_seconds_below_threshold_and_ignores_saturated_ones(self) -> None:
        rows = [TickSecond(s, 60, p5, 50, s * 10, 0, 1.0) for s, p5 in enumerate([60, 50, 50, 60, 50, 50, 50, 40])]
        onset = degradation_onset(rows, 54)
        assert onset is not None and onset.second == 4 and onset.players == 40
        assert degradation_onset(rows, 54, saturated={5}) is None


def test_seconds_under_the_harness_s_own_network_faults_are_no_evidence_of_degradation() -> None:
    """Players the relay froze or cut off read 0 Hz: that is our doing, not the server's."""
    from loadtest.collectors.base import Context
    from loadtest.collectors.ticks import FAULT_SLACK_S, fault_seconds

    storms = [
        {"side": "freeze", "at": 2, "seconds": 3.0},
        {"side": "reset", "at": 20},
        {"side": "server", "at": 30},  # a server-side storm is the server's own: judged as ever
    ]
    ctx = Context(reducers={}, settings={"storms": storms}, first_second=100)
    seconds = fault_seconds(ctx)
    assert seconds == set(range(102, 105 + FAULT_SLACK_S + 1)) | set(range(120, 121 + FAULT_SLACK_S))
    rows = [TickSecond(100 + s, 30, p5, 0, 20, 0, 1.0) for s, p5 in enumerate([30, 30, 0.1, 0.1, 0.1, 0.1, 30])]
    assert degradation_onset(rows, 27) is not None
    assert degradation_onset(rows, 27, saturated=seconds) is None
    assert fault_seconds(Context(reducers={}, settings={"storms": storms})) == set(), "no run start: nothing known"
