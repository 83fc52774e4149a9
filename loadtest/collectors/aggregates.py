"""Per-second, mergeable aggregates: the only form in which collectors keep data.

A collector never keeps raw lists. For each wall-clock second it keeps named counters and HDR
histograms; a closed second is encoded as one JSON line (a :class:`Record`) that can be shipped
from a worker to the master, appended to the run's log, and merged with the same second from
other workers in any order. Merging is addition, so one process or twenty give the same totals,
and an interrupted run keeps every second that was written.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from hdrh.histogram import HdrHistogram

#: Histogram ranges by unit: (lowest, highest trackable value, significant digits). Tick rates get
#: three digits (0.1%: 60 Hz is resolved to 0.06 Hz), everything else two (1%).
UNITS: dict[str, tuple[int, int, int]] = {
    "us": (1, 600_000_000, 2),  # microseconds, up to 10 minutes
    "ms": (1, 86_400_000, 2),  # milliseconds, up to a day
    "centihz": (1, 100_000, 3),  # hundredths of a hertz, up to 1 kHz
    "count": (1, 1_000_000_000, 2),
}


def new_histogram(unit: str) -> HdrHistogram:
    low, high, digits = UNITS[unit]
    return HdrHistogram(low, high, digits)


#: name -> (lowest, highest) value a histogram of that name records; filled on first use, because
#: the engine thread observes two histograms per tick and parsing the name each time showed up.
_LIMITS: dict[str, tuple[int, int]] = {}


def _limits(name: str) -> tuple[int, int]:
    limits = _LIMITS.get(name)
    if limits is None:
        low, high, _ = UNITS[hist_unit(name)]
        limits = _LIMITS[name] = (low, high)
    return limits


def hist_unit(name: str) -> str:
    """Histogram names end with their unit (``lag_us``, ``tick_rate_centihz``): the name is the schema."""
    suffix = name.rsplit("_", 1)[-1]
    if suffix not in UNITS:
        raise ValueError(f"histogram name {name!r} must end with one of {sorted(UNITS)}")
    return suffix


@dataclass
class Bucket:
    """One second of one collector: counters and histograms."""

    counts: Counter[str] = field(default_factory=Counter)
    hists: dict[str, HdrHistogram] = field(default_factory=dict)

    def observe(self, name: str, value: float) -> None:
        low, high = _limits(name)
        hist = self.hists.get(name)
        if hist is None:
            hist = self.hists[name] = new_histogram(hist_unit(name))
        value = int(value)
        hist.record_value(high if value > high else low if value < low else value)

    def merge(self, other: Bucket) -> None:
        self.counts.update(other.counts)
        for name, hist in other.hists.items():
            mine = self.hists.get(name)
            if mine is None:
                self.hists[name] = mine = new_histogram(hist_unit(name))
            mine.add(hist)


@dataclass(frozen=True)
class Record:
    """A closed second of one collector from one worker, as shipped and as logged."""

    collector: str
    second: int
    worker: str
    counts: dict[str, float]
    hists: dict[str, str]  # name -> HdrHistogram.encode() text

    def to_json(self) -> str:
        return json.dumps(
            {"c": self.collector, "s": self.second, "w": self.worker, "n": self.counts, "h": self.hists},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> Record:
        d = json.loads(line)
        return cls(d["c"], int(d["s"]), str(d["w"]), dict(d.get("n", {})), dict(d.get("h", {})))

    def to_wire(self) -> list[object]:
        return [self.collector, self.second, self.worker, self.counts, self.hists]

    @classmethod
    def from_wire(cls, data: list) -> Record:
        collector, second, worker, counts, hists = data
        return cls(str(collector), int(second), str(worker), dict(counts), dict(hists))

    def bucket(self) -> Bucket:
        hists = {name: HdrHistogram.decode(text) for name, text in self.hists.items()}
        return Bucket(Counter(self.counts), hists)


class Aggregator:
    """Counters and histograms for one collector, bucketed by wall-clock second.

    Not thread-safe by design: each aggregator is touched from exactly one OS thread (the gevent
    side or the WebSocket engine's thread), which is what makes the hot path a dict update.
    """

    def __init__(self, collector: str) -> None:
        self.collector = collector
        self._buckets: dict[int, Bucket] = {}

    def bucket(self, second: int | None = None) -> Bucket:
        second = int(time.time()) if second is None else second
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = Bucket()
        return bucket

    def count(self, name: str, n: float = 1, second: int | None = None) -> None:
        self.bucket(second).counts[name] += n

    def observe(self, name: str, value: float, second: int | None = None) -> None:
        self.bucket(second).observe(name, value)

    def drain(self, worker: str, before: int | None = None) -> list[Record]:
        """Encode and forget every second older than ``before`` (all seconds when None)."""
        seconds = [s for s in self._buckets if before is None or s < before]
        records = []
        for second in sorted(seconds):
            b = self._buckets.pop(second)
            if not b.counts and not b.hists:
                continue
            counts = {k: v for k, v in b.counts.items() if v}
            hists = {k: h.encode().decode("ascii") for k, h in b.hists.items() if h.get_total_count()}
            records.append(Record(self.collector, second, worker, counts, hists))
        return records


def merge_records(records: Iterable[Record]) -> dict[str, dict[int, Bucket]]:
    """collector -> second -> merged bucket, across workers."""
    merged: dict[str, dict[int, Bucket]] = {}
    for record in records:
        per_second = merged.setdefault(record.collector, {})
        bucket = per_second.get(record.second)
        if bucket is None:
            per_second[record.second] = record.bucket()
        else:
            bucket.merge(record.bucket())
    return merged


def percentile(hist: HdrHistogram | None, p: float) -> float | None:
    """HdrHistogram's ``get_value_at_percentile``, with its counting loop done by numpy.

    The pure-Python loop walks every count slot (thousands per histogram) and was about half of
    the time to build a one-hour report. The target count and the value of the slot found are
    still hdrh's own methods, so results are identical (tests/test_units.py checks it).
    """
    if hist is None or hist.get_total_count() == 0:
        return None
    if p <= 0:
        return float(hist.get_min_value())
    target = hist.get_target_count_at_percentile(p)
    # Decoded histograms may carry fewer slots than the array holds; hdrh reads the rest as zero.
    used = min(hist.counts_len, hist.encoder.payload.counts_len)
    cumulative = np.cumsum(np.ctypeslib.as_array(hist.counts)[:used], dtype=np.uint64)
    index = int(np.searchsorted(cumulative, target, side="left"))
    if index >= used:
        return 0.0
    return float(hist.get_highest_equivalent_value(hist.get_value_from_index(index)))


def finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
