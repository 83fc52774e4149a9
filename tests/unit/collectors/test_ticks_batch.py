"""The tick collector's batched histogram recording gives exactly what hdrh's ``record_value`` gives."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from loadtest.collectors.aggregates import UNITS, Bucket, new_histogram
from loadtest.collectors.ticks import TickCollector, observe_many, record_many


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_record_many_matches_record_value(unit: str) -> None:
    low, high, _ = UNITS[unit]
    rng = np.random.default_rng(7)
    # Every order of magnitude of the range, its edges, and repeats.
    values = np.concatenate(
        [
            np.exp(rng.uniform(0, np.log(high), 5000)).astype(np.int64),
            np.array([low, low + 1, high - 1, high, 2, 3, 1023, 1024, 1025, 2047, 2048, 2049]),
            np.full(50, 777),
        ]
    ).clip(low, high)
    one_by_one, batched = new_histogram(unit), new_histogram(unit)
    for v in values:
        one_by_one.record_value(int(v))
    record_many(batched, values)
    assert batched.encode() == one_by_one.encode()
    assert (batched.get_total_count(), batched.get_min_value(), batched.get_max_value()) == (
        one_by_one.get_total_count(),
        one_by_one.get_min_value(),
        one_by_one.get_max_value(),
    )
    for p in (0, 50, 90, 99, 99.9, 100):
        assert batched.get_value_at_percentile(p) == one_by_one.get_value_at_percentile(p)


def test_observe_many_clamps_and_truncates_like_observe() -> None:
    values = [-5.0, 0.0, 0.4, 0.99, 1.0, 1.5, 2.999, 12345.678, 599_999_999.9, 600_000_000.0, 7e9, 1e300]
    one, many = Bucket(), Bucket()
    for v in values:
        one.observe("lag_us", v)
    observe_many(many, "lag_us", values)
    assert many.hists["lag_us"].encode() == one.hists["lag_us"].encode()


def test_batched_values_added_to_an_existing_histogram() -> None:
    hist = HdrHistogram(1, 600_000_000, 2)
    ref = HdrHistogram(1, 600_000_000, 2)
    for v in (5, 50_000, 9):
        hist.record_value(v)
        ref.record_value(v)
    more = np.array([3, 70_000_000, 50_000], dtype=np.int64)
    record_many(hist, more)
    for v in more:
        ref.record_value(int(v))
    assert hist.encode() == ref.encode()


def test_the_collector_reads_the_same_as_recording_each_tick() -> None:
    """Ticks across seconds, with acks: the batched collector's buckets equal per-value recording."""
    c = TickCollector(estimate_offset=True)
    s = c.open()
    expected: dict[int, Bucket] = {}
    rng = np.random.default_rng(3)
    tick, last_recv, last_ts = 0, None, None
    for i in range(600):
        tick += 1 + int(rng.integers(0, 2) == 0 and i % 50 == 0)
        ts = 1000.0 + i / 60
        now = ts + float(rng.uniform(0.0005, 0.03))
        second = int(now)
        if i % 10 == 0:
            s.sent_input(i, now - 0.02)
        ack = i - 5 if i % 10 == 5 else 0
        raw = now - ts
        ref = expected.setdefault(second, Bucket())
        c.on_tick(s, tick, ts, ack, now, second)
        ref.observe("lag_us", (raw - s.offset) * 1e6)
        if last_ts is not None and ts - last_ts > 0:
            ref.observe("jitter_us", abs((now - last_recv) - (ts - last_ts)) * 1e6)
        last_recv, last_ts = now, ts
    for second, ref in expected.items():
        got = c.agg.bucket(second)
        assert got.hists["lag_us"].encode() == ref.hists["lag_us"].encode()
        assert got.hists["jitter_us"].encode() == ref.hists["jitter_us"].encode()
        assert got.hists["lag_us"].get_total_count() == got.counts["ticks"]
    rtt = [c.agg.bucket(sec).hists.get("input_rtt_us") for sec in expected]
    assert sum(h.get_total_count() for h in rtt if h is not None) == 59  # inputs 10..590; ack 0 means none
