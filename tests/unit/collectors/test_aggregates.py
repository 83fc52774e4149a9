"""Buckets, records and histograms: what workers ship merges to the sum, and percentiles are hdrh's."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from loadtest.collectors.aggregates import UNITS, Aggregator, Record, merge_records, new_histogram, percentile


class TestAggregates:
    def test_records_from_two_workers_merge_to_the_sum(self) -> None:
        a, b = Aggregator("x"), Aggregator("x")
        for v in range(1, 101):
            a.observe("lat_us", v, second=10)
            a.count("n", second=10)
        for v in range(101, 201):
            b.observe("lat_us", v, second=10)
            b.count("n", 2, second=11)
        wire = [Record.from_json(r.to_json()) for r in a.drain("w1") + b.drain("w2")]
        merged = merge_records(wire)["x"]
        assert merged[10].counts["n"] == 100
        assert merged[11].counts["n"] == 200
        assert merged[10].hists["lat_us"].get_total_count() == 200
        assert percentile(merged[10].hists["lat_us"], 50) == pytest.approx(100, rel=0.02)

    def test_drain_keeps_the_open_second(self) -> None:
        agg = Aggregator("x")
        agg.count("n", second=5)
        agg.count("n", second=6)
        assert [r.second for r in agg.drain("w", before=6)] == [5]
        assert [r.second for r in agg.drain("w")] == [6]

    def test_histogram_names_must_say_their_unit(self) -> None:
        with pytest.raises(ValueError, match="must end with"):
            Aggregator("x").observe("latency", 1)

    @pytest.mark.parametrize("unit", sorted(UNITS))
    def test_percentile_is_exactly_hdrh_on_random_histograms(self, unit: str) -> None:
        # percentile() counts with numpy; it must give hdrh's own answer to the last unit, for
        # histograms as recorded and as decoded from the wire, at every percentile readers use.
        rng = random.Random(7)
        low, high, _ = UNITS[unit]
        for trial in range(25):
            hist = new_histogram(unit)
            shape = rng.choice(("uniform", "lognormal", "few"))
            for _ in range(rng.choice((1, 2, 10, 500, 3000))):
                if shape == "uniform":
                    value = rng.randint(low, high)
                elif shape == "lognormal":
                    value = int(rng.lognormvariate(8, 2.5))
                else:
                    value = rng.choice((low, 3, 1000, high))
                hist.record_value(min(high, max(low, value)), rng.choice((1, 1, 7)))
            decoded = HdrHistogram.decode(hist.encode())
            for h in (hist, decoded):
                for p in (0, 0.1, 1, 5, 25, 50, 90, 95, 99, 99.9, 99.99, 100, 150):
                    expected = float(h.get_min_value()) if p <= 0 else float(h.get_value_at_percentile(p))
                    assert percentile(h, p) == expected, (unit, trial, shape, p)

    def test_percentile_of_nothing_is_none(self) -> None:
        assert percentile(None, 50) is None
        assert percentile(new_histogram("us"), 50) is None
