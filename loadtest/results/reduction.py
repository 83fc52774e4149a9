"""The streaming reduction: every number of a run, from one pass over its seconds.

A :class:`Reduction` is fed whole seconds in time order (each collector's share already merged
across workers) and hands each collector's bucket to that collector's
:class:`~loadtest.collectors.base.Reducer`, which keeps its totals, the few per-second facts its
summary needs, and, when tables are wanted, the rows of its per-second table. The final judging
feeds it from the run folder (:func:`read`), the live views feed it as seconds settle
(:mod:`loadtest.results.live`); both read their numbers off the same reducers, so what the web UI
and the terminal show during a run is what the report says after it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtest.collectors.aggregates import Bucket
from loadtest.collectors.base import Context, Reducer, Row, registered
from loadtest.results.runfolder import LogIndex, RunFolder


@dataclass
class Table:
    """The rows of one collector's per-second table, and the second each row belongs to."""

    seconds: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def add(self, second: int, rows: list[Row]) -> None:
        for row in rows:
            self.seconds.append(second)
            self.rows.append(row)


class Reduction:
    """Run totals, per-second facts and (optionally) tables, fed one whole second at a time.

    ``collectors`` limits it to some reducers (a gate's sliding window needs only the sections it
    reads); ``tables`` keeps every per-second row (the report and the CSVs want them, a live view
    does not).
    """

    def __init__(
        self,
        *,
        settings: Mapping[str, Any] | None = None,
        collectors: Iterable[str] | None = None,
        tables: bool = False,
        nominal_hz: float | None = None,
        threshold: float | None = None,
    ) -> None:
        wanted = None if collectors is None else set(collectors)
        self.reducers: dict[str, Reducer] = {
            name: cls() for name, cls in registered().items() if wanted is None or name in wanted
        }
        self._wanted = wanted
        self.ctx = Context(self.reducers, dict(settings or {}), nominal_hz=nominal_hz, threshold=threshold)
        self.tables: dict[str, Table] | None = (
            {r.table: Table() for r in self.reducers.values() if r.table} if tables else None
        )
        self.first_second: int | None = None
        self.last_second: int | None = None
        #: collector -> (second, counts) of the newest second seen: the "now" of a live view.
        self.latest: dict[str, tuple[int, Counter[str]]] = {}

    def _reducer(self, name: str) -> Reducer | None:
        reducer = self.reducers.get(name)
        if reducer is None and self._wanted is None:
            # A collector this code does not know (a newer worker's): keep its totals at least.
            reducer = self.reducers[name] = Reducer()
        return reducer

    def add_second(self, second: int, buckets: Mapping[str, Bucket]) -> dict[str, Any]:
        """One second of the run: each collector's bucket, merged across workers. Returns each
        reducer's fact of the second (sliding windows reuse them)."""
        facts: dict[str, Any] = {}
        if not buckets:
            return facts
        self.first_second = second if self.first_second is None else min(self.first_second, second)
        self.last_second = second if self.last_second is None else max(self.last_second, second)
        self.ctx.first_second = self.first_second
        names = [n for n in self.reducers if n in buckets] + [n for n in buckets if n not in self.reducers]
        for name in names:
            reducer = self._reducer(name)
            if reducer is None:
                continue
            bucket = buckets[name]
            facts[name] = reducer.add(second, bucket, self.ctx)
            previous = self.latest.get(name)
            if previous is None or second >= previous[0]:
                self.latest[name] = (second, Counter(bucket.counts))
            if self.tables is not None and reducer.table and (bucket.counts or bucket.hists):
                self.tables[reducer.table].add(second, reducer.rows(second, bucket, self.ctx))
        return facts

    def add(self, collector: str, second: int, bucket: Bucket) -> None:
        self.add_second(second, {collector: bucket})

    def add_late(self, collector: str, bucket: Bucket) -> None:
        """A share that arrived after its second was folded (a worker's last flush): totals only."""
        reducer = self._reducer(collector)
        if reducer is not None:
            reducer.add_late(bucket)

    def total(self, collector: str) -> Bucket:
        reducer = self.reducers.get(collector)
        return reducer.total if reducer is not None else Bucket()

    def reducer(self, collector: str) -> Reducer:
        return self.ctx.reducer(collector)

    def sections(self) -> dict[str, Any]:
        """Every collector's summary sections, in the documented order (docs/summary.md)."""
        out: dict[str, Any] = {}
        for reducer in self.reducers.values():
            out.update(reducer.summarise(self.ctx))
        ordered = {name: out.pop(name) for name in SECTION_ORDER if name in out}
        return {**ordered, **out}


#: The order sections appear in summary.json; a new collector's sections follow these.
SECTION_ORDER = ("generator", "tick", "ws", "protocol_errors", "rate_limit", "replay", "reconnect", "http", "cors")


@dataclass
class Run:
    """One pass over a run folder: the reduction (with tables), where the log's lines were, and
    the sliding windows the scenario's ``over`` gates asked for."""

    folder: RunFolder
    reduction: Reduction
    index: LogIndex
    windows: dict[float, Any]

    @property
    def first_second(self) -> int | None:
        return self.reduction.first_second


def read(folder: RunFolder | str, *, windows: Mapping[float, Iterable[str]] | None = None) -> Run:
    """Read a run folder once: every second in time order feeds the reduction and each window.

    ``windows`` maps a window width in seconds to the metrics its gates read."""
    from loadtest.results.windows import Windows

    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    settings = folder.settings()
    # The target's own gauge of its nominal tick rate, for the tick verdicts of a run that learnt
    # it nowhere else (no ticks.nominal_hz, no welcome message).
    from loadtest.collectors.ticks import TARGET_NOMINAL, gauge_nominal

    gauge = gauge_nominal(folder.target_metrics(), settings)
    if gauge is not None:
        settings = {**settings, TARGET_NOMINAL: gauge}
    reduction = Reduction(settings=settings, tables=True)
    slides = {width: Windows(width, metrics, settings) for width, metrics in (windows or {}).items()}
    index = folder.index()
    for second in folder.seconds(index):
        facts = reduction.add_second(second.second, second.buckets)
        for slide in slides.values():
            slide.add_second(second.second, second.buckets, facts)
    for slide in slides.values():
        slide.finish()
    return Run(folder, reduction, index, slides)
