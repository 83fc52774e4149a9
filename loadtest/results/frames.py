"""Per-second tables of a run: what the report draws, and ``data/<name>.csv`` for a spreadsheet.

The summary answers "how did the run go"; these tables answer "when": the second tick rate fell,
the second the 429s began, how long a storm took to heal. Each collector's reducer writes its own
rows (:meth:`~loadtest.collectors.base.Reducer.rows`) during the one pass over the run; here they
become data frames indexed by run time in seconds (``t``: the second minus the run's first
second, the same origin for every frame so they line up), each with the UTC ``time`` of its second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from loadtest.collectors.base import Reducer, registered
from loadtest.results.reduction import Reduction, Table

INDEX = "t"
#: Tables in the order the report and the CSV export list them.
NAMES = ("ticks", "http", "sessions", "reconnect", "rate_limit", "generator", "replay")


def frames(reduction: Reduction) -> dict[str, pd.DataFrame]:
    """One frame per registered table; a collector that recorded nothing gives an empty frame
    with the same columns, so readers and the CSV header never depend on what ran."""
    if reduction.tables is None:
        raise ValueError("this reduction kept no tables (Reduction(tables=True) keeps them)")
    by_table = {cls.table: cls for cls in registered().values() if cls.table}
    order = [n for n in NAMES if n in by_table] + [n for n in by_table if n not in NAMES]
    t0 = reduction.first_second
    return {name: _frame(by_table[name], reduction.tables.get(name) or Table(), t0) for name in order}


def columns(table: str) -> tuple[str, ...]:
    """A table's fixed columns, ``time`` first (rows may add columns named by the data after them)."""
    for cls in registered().values():
        if cls.table == table:
            return ("time", *cls.columns)
    raise KeyError(f"no collector has a table named {table!r}")


def export_csv(frames: Mapping[str, pd.DataFrame], data_dir: str | os.PathLike[str]) -> list[Path]:
    """``<data_dir>/<name>.csv`` per frame, ``t`` first; an empty value is "no data that second"."""
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=True, index_label=INDEX, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.10g")
        paths.append(path)
    return paths


def _frame(reducer: type[Reducer], table: Table, t0: int | None) -> pd.DataFrame:
    columns = ["time", *reducer.columns]
    if not table.rows or t0 is None:
        frame = pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "time" else "float64") for c in columns})
        frame.index = pd.Index([], dtype="int64", name=INDEX)
    else:
        frame = pd.DataFrame(table.rows, columns=[*reducer.columns, *_extra(table.rows, columns)])
        frame.insert(0, "time", pd.to_datetime(table.seconds, unit="s", utc=True))
        frame.index = pd.Index([s - t0 for s in table.seconds], dtype="int64", name=INDEX)
    for column in reducer.bool_columns:
        frame[column] = frame[column].astype(bool)
    for column in reducer.text_columns:
        frame[column] = frame[column].astype("object")
    ints = [c for c in frame.columns if c != "time"] if reducer.int_columns is None else reducer.int_columns
    return _ints(frame, ints)


def _extra(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Columns named by the data (an end reason, a refusal), sorted, after the fixed ones."""
    known = set(columns)
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in known:
                seen.setdefault(key, None)
    return sorted(seen)


def _ints(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for c in columns:
        if c in frame:
            frame[c] = frame[c].fillna(0).astype("int64")
    return frame


__all__ = ["INDEX", "NAMES", "columns", "export_csv", "frames"]
