"""Sliding windows for ``over`` gates, held in bounded memory.

A gate with ``over = "60s"`` is judged on its worst 60-second window, stepping a fifth of a
window. A :class:`Windows` is fed the run's seconds in time order. It keeps only the collectors
whose summary sections its gates read, merged into blocks of seconds that every window either
holds whole or not at all (so each second is merged once, and each block into the five windows
that hold it), plus each second's small facts (a trend row, a saturated flag). Blocks leave as
soon as no window to come can hold them, and a finished window leaves just the values of its
gates' metrics. So a window costs the same at minute 1 and at minute 60, live or afterwards.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtest.collectors.aggregates import Bucket
from loadtest.collectors.base import owners, registered


@dataclass
class _Block:
    start: int
    totals: dict[str, Bucket] = field(default_factory=dict)
    facts: list[tuple[int, str, Any]] = field(default_factory=list)
    first: int | None = None
    last: int | None = None


class Windows:
    """Every ``width``-second window of a run, stepping ``width // 5`` seconds."""

    def __init__(self, width: float, metrics: Iterable[str], settings: Mapping[str, Any] | None = None) -> None:
        self.width = max(1, round(width))
        self.step = max(1, self.width // 5)
        self.block = math.gcd(self.width, self.step)
        self.metrics = tuple(dict.fromkeys(metrics))
        sections = {m.split(".", 1)[0] for m in self.metrics}
        #: Collectors whose totals the windows need, and those read only for their facts.
        self.full = owners(sections, with_needs=False)
        self.collectors = owners(sections)
        self.settings = dict(settings or {})
        #: One entry per finished window: each metric's value in it (None: no data there).
        self.values: list[dict[str, Any]] = []
        self._blocks: deque[_Block] = deque()
        self._first: int | None = None
        self._next: int | None = None

    def add_second(self, second: int, buckets: Mapping[str, Bucket], facts: Mapping[str, Any] | None = None) -> None:
        """One second, in time order; ``facts`` are the main reduction's facts of it, if at hand."""
        if self._first is None:
            self._first = self._next = second
        assert self._next is not None
        kept = [name for name in buckets if name in self.collectors]
        if kept:
            start = self._first + (second - self._first) // self.block * self.block
            if not self._blocks or self._blocks[-1].start != start:
                self._blocks.append(_Block(start))
            block = self._blocks[-1]
            block.first = second if block.first is None else block.first
            block.last = second
            reducers = registered()
            for name in kept:
                bucket = buckets[name]
                if name in self.full:
                    block.totals.setdefault(name, Bucket()).merge(bucket)
                fact = facts[name] if facts is not None and name in facts else reducers[name]().fact(second, bucket)
                if fact is not None:
                    block.facts.append((second, name, fact))
        while self._next + self.width - 1 <= second:
            self._close(self._next)
            self._next += self.step
            while self._blocks and self._blocks[0].start + self.block <= self._next:
                self._blocks.popleft()

    def finish(self) -> None:
        """A run shorter than one window is judged on the one window it has."""
        if self._first is not None and not self.values:
            self._close(self._first)

    def _close(self, start: int) -> None:
        from loadtest.results.gates import flatten, resolve
        from loadtest.results.reduction import Reduction

        reduction = Reduction(settings=self.settings, collectors=self.collectors)
        held = [b for b in self._blocks if start <= b.start < start + self.width]
        for block in held:
            for name, total in block.totals.items():
                reduction.reducers[name].total.merge(total)
        for block in held:
            for second, name, fact in block.facts:
                reduction.reducers[name].observe(second, fact)
        seconds = [s for b in held for s in (b.first, b.last) if s is not None]
        if seconds:
            reduction.first_second = reduction.ctx.first_second = min(seconds)
            reduction.last_second = max(seconds)
        flat = flatten(reduction.sections())
        # A path-named HTTP metric (http./join.p95_ms) is read from the step that has that path.
        self.values.append({metric: flat.get(resolve(metric, flat)) for metric in self.metrics})
