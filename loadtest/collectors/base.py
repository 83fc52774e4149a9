"""The results side of a collector, and the registry the results pipeline iterates.

A collector module owns its concern end to end: the recording class the runtime calls (it writes
per-second counters and histograms into an :class:`~loadtest.collectors.aggregates.Aggregator`,
named by :class:`~loadtest.collectors.keys.Family` values), and a :class:`Reducer` subclass that
reads those seconds back: what it keeps per second, its section(s) of the summary, and the rows of
its per-second table. Seconds from several workers are merged by addition before a reducer sees
them (:meth:`~loadtest.collectors.aggregates.Bucket.merge`), so a reducer never knows how many
workers there were.

Adding a collector: write its module with both halves, decorate the reducer with
:func:`register`, and import the module in :mod:`loadtest.collectors` (see docs/harness.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from loadtest.collectors.aggregates import Bucket, percentile

Row = dict[str, Any]


class Section(BaseModel):
    """The shape of one part of ``summary.json``: a key a reducer renames or forgets fails the
    judging at once (tests catch it), instead of reading as "no data" somewhere downstream."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Context:
    """What a reducer may read besides its own seconds: the run's settings and the other reducers.

    ``settings`` is the player settings as recorded in the run folder's ``run.json`` (a plain
    mapping: a run folder outlives the code that wrote it).
    """

    reducers: Mapping[str, Reducer]
    settings: Mapping[str, Any] = field(default_factory=dict)
    first_second: int | None = None
    nominal_hz: float | None = None
    threshold: float | None = None

    def reducer(self, name: str) -> Reducer:
        found = self.reducers.get(name)
        return found if found is not None else Reducer()

    def total(self, name: str) -> Bucket:
        return self.reducer(name).total


class Reducer:
    """Fed one collector's merged seconds in time order; keeps totals and what its summary needs.

    Subclasses set ``name`` (the collector's record name), ``sections`` (summary keys they write),
    ``needs`` (other collectors whose reducers their summary reads) and, with a per-second table,
    ``table`` and ``columns``; then override :meth:`observe`, :meth:`rows` and :meth:`summarise`.
    """

    name: ClassVar[str] = ""
    sections: ClassVar[tuple[str, ...]] = ()
    #: The model of each section it writes (``None`` allowed where the section may be null).
    models: ClassVar[dict[str, Any]] = {}
    needs: ClassVar[tuple[str, ...]] = ()
    table: ClassVar[str | None] = None
    #: The table's columns after ``time``; rows may add sorted extra columns named by the data.
    columns: ClassVar[tuple[str, ...]] = ()
    #: Table columns that hold whole numbers (missing means 0), booleans and text.
    int_columns: ClassVar[tuple[str, ...] | None] = ()
    bool_columns: ClassVar[tuple[str, ...]] = ()
    text_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.total = Bucket()

    def add(self, second: int, bucket: Bucket, ctx: Context) -> Any:
        """Fold one second in; returns its :meth:`fact` so others (sliding windows) need not
        compute it again."""
        self.total.merge(bucket)
        fact = self.fact(second, bucket)
        if fact is not None:
            self.observe(second, fact)
        return fact

    def add_late(self, bucket: Bucket) -> None:
        """A share that arrived after its second was folded (a worker's last flush): totals only."""
        self.total.merge(bucket)

    def fact(self, second: int, bucket: Bucket) -> Any:
        """What the summary needs of this second beyond totals (a trend row, a storm's start), as a
        small value computed once per second; None when there is nothing."""
        return None

    def observe(self, second: int, fact: Any) -> None:
        """Keep one second's :meth:`fact` (seconds come in time order)."""

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        """This second's rows of the collector's table (none by default)."""
        return []

    def summarise(self, ctx: Context) -> dict[str, Any]:
        """``{section: value}`` for each of ``sections``."""
        return {}


_REGISTRY: dict[str, type[Reducer]] = {}
R = TypeVar("R", bound=type[Reducer])


def register(cls: R) -> R:
    """Make a reducer part of every summary, table and window, in registration order."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no collector name")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Reducer]]:
    """Reducers by collector name, ordered so that each comes after those it ``needs``."""
    import loadtest.collectors  # noqa: F401 - importing the package registers every collector

    ordered: dict[str, type[Reducer]] = {}

    def visit(name: str, trail: tuple[str, ...] = ()) -> None:
        if name in ordered or name not in _REGISTRY:
            return
        if name in trail:
            raise ValueError(f"collectors need each other in a circle: {' -> '.join((*trail, name))}")
        for need in _REGISTRY[name].needs:
            visit(need, (*trail, name))
        ordered[name] = _REGISTRY[name]

    for name in list(_REGISTRY):
        visit(name)
    return ordered


def owners(sections: Iterable[str], *, with_needs: bool = True) -> set[str]:
    """The collectors whose reducers write these summary sections (and those they need)."""
    wanted = set(sections)
    reducers = registered()
    out: set[str] = set()

    def add(name: str) -> None:
        if name in out or name not in reducers:
            return
        out.add(name)
        for need in reducers[name].needs if with_needs else ():
            add(need)

    for name, cls in reducers.items():
        if wanted & set(cls.sections):
            add(name)
    return out


# -- small helpers every reducer uses -----------------------------------------------------------


def ms(hist: Any, p: float, scale: float = 1000.0, digits: int | None = 3) -> float | None:
    """A percentile of a histogram recorded in micro-units, in units (ms from us, Hz from centihz)."""
    value = percentile(hist, p)
    if value is None:
        return None
    return value / scale if digits is None else round(value / scale, digits)


def max_of(hist: Any, scale: float, digits: int | None = 3) -> float | None:
    if hist is None or not hist.get_total_count():
        return None
    value = hist.get_max_value() / scale
    return value if digits is None else round(value, digits)


def labelled_rows(counts: Mapping[str, float], columns: Mapping[str, Any], label: str) -> list[Row]:
    """One table row per value of a one-label family (an endpoint, a replay kind), with a column
    per family: ``columns`` maps a column name to the :class:`~loadtest.collectors.keys.Family`
    whose counts fill it."""
    per: dict[str, dict[str, int]] = {}
    for column, family in columns.items():
        for (value,), n in family.items(counts):
            row = per.setdefault(value, {})
            row[column] = row.get(column, 0) + int(n)
    return [{label: value, **per[value]} for value in sorted(per)]
