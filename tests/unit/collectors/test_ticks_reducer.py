"""The tick reducer's onset, resumed between live summaries, is the onset of all rows at once."""

from __future__ import annotations

import random

from loadtest.collectors.ticks import TickSecond, _OnsetScan, degradation_onset


def _rows(rng: random.Random, n: int) -> list[TickSecond]:
    return [
        TickSecond(1000 + i, 60.0, rng.choice((59.9, 59.0, 50.0, 49.0, None)), 40.0, rng.randint(1, 64), 0, 2.0)
        for i in range(n)
    ]


def test_resumed_scan_finds_the_same_onset_as_one_scan_of_everything() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        rows = _rows(rng, 200)
        saturated = {r.second for r in rows if rng.random() < 0.05}
        scan, seen = _OnsetScan(), []
        for chunk in range(0, 200, rng.randint(1, 17)):
            seen = rows[: chunk + 1]
            resumed = scan.scan(seen, 54.0, saturated)
            assert resumed == degradation_onset(seen, 54.0, saturated=saturated), seed
        # A different threshold starts over rather than reusing a scan made for another.
        assert scan.scan(seen, 45.0, saturated) == degradation_onset(seen, 45.0, saturated=saturated)
