"""Per-second tables of a run: what the report draws, and ``data/<name>.csv`` for a spreadsheet.

The summary answers "how did the run go"; these frames answer "when": the second tick rate fell,
the second the 429s began, how long a storm took to heal. Every frame is indexed by run time in
seconds (``t``: the second minus the run's first second, the same origin for every frame so they
line up) and carries the UTC ``time`` of that second.

A one-hour run has 3,600 seconds, each with a dozen HDR histograms of up to 64 KiB decoded, so
nothing here holds decoded histograms for longer than one second's row takes: each second's
percentiles are read and the bucket is let go. :func:`open_log` goes further: it leaves the log
on disk and decodes (and merges across workers) a second's histogram only when it is read.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
from hdrh.histogram import HdrHistogram

from loadtest.collectors import generator, http, ratelimit, reconnects, replay, sessions, ticks
from loadtest.collectors.aggregates import Bucket, Record, hist_unit, new_histogram, percentile
from loadtest.results.runfolder import AGGREGATES
from loadtest.results.summary import Reduction

INDEX = "t"
TICKS = (
    "time",
    "p50_hz",
    "p5_hz",
    "min_hz",
    "players",
    "missed",
    "lag_p50_ms",
    "lag_p99_ms",
    "jitter_p99_ms",
    "saturated",
)
STATUS_CLASSES = ("status_2xx", "status_4xx", "status_429", "status_5xx", "status_0", "status_other")
HTTP = ("time", "endpoint", "requests", "failures", *STATUS_CLASSES, "p50_ms", "p95_ms", "p99_ms")
SESSIONS = ("time", "opened", "unexpected", "connect_failed", "protocol_errors")
RECONNECT = ("time", "dropped", "attempts", "recovered", "gave_up", "limited", "storms", "recovery_p50_s")
RATE_LIMIT = ("time", "endpoint", "responses_429", "without_retry_after", "honoured", "not_honoured")
GENERATOR = ("time", "processes", "cpu_max_pct", "cpu_mean_pct", "loop_lag_p99_ms", "saturated", "sessions")
REPLAY = ("time", "kind", "attempts", "rejected", "accepted")
NAMES = ("ticks", "http", "sessions", "reconnect", "rate_limit", "generator", "replay")

Data = Mapping[str, Mapping[int, Bucket]]


class _LogFile:
    """The run's log, kept on disk: lines are found again by their offset when a second is read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO | None = None

    def records(self, offsets: list[int]) -> Iterator[Record]:
        if self._fh is None:
            # Kept open across seconds; open_log closes it on exit.
            self._fh = open(self.path, "rb")  # noqa: SIM115
        for offset in offsets:
            self._fh.seek(offset)
            try:
                yield Record.from_json(self._fh.readline().decode("utf-8"))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: read_log skips it too

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _LazyHists(Mapping[str, HdrHistogram]):
    """A second's histograms, still encoded: each is decoded (and merged across workers) when read,
    so the ones a frame never asks for (arrival rates, session durations) are never decoded."""

    def __init__(self) -> None:
        self._encoded: dict[str, list[str]] = {}

    def add(self, name: str, text: str) -> None:
        self._encoded.setdefault(name, []).append(text)

    def __getitem__(self, name: str) -> HdrHistogram:
        texts = self._encoded[name]
        hist = HdrHistogram.decode(texts[0])
        for text in texts[1:]:
            hist.add(HdrHistogram.decode(text))
        return hist

    def __iter__(self) -> Iterator[str]:
        return iter(self._encoded)

    def __len__(self) -> int:
        return len(self._encoded)


class LazySeconds(Mapping[int, Bucket]):
    """second -> merged Bucket of one collector, read from the log each time it is asked for.

    Holds only where the second's lines are, so a long run costs a few integers per record, not
    3,600 seconds of decoded histograms (nor the log's text). The Bucket's ``hists`` decode on
    access and are not cached: read each once.
    """

    def __init__(self, log: _LogFile) -> None:
        self._log = log
        self._offsets: dict[int, list[int]] = {}

    def add(self, second: int, offset: int) -> None:
        self._offsets.setdefault(second, []).append(offset)

    def __getitem__(self, second: int) -> Bucket:
        counts: Counter[str] = Counter()
        hists = _LazyHists()
        for record in self._log.records(self._offsets[second]):
            counts.update(record.counts)
            for name, text in record.hists.items():
                hists.add(name, text)
        return Bucket(counts, hists)  # type: ignore[arg-type]  # a read-only Mapping is all frames need

    def __iter__(self) -> Iterator[int]:
        return iter(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)


#: The head every line of the log starts with (Record.to_json writes "c" then "s" first).
_HEAD = re.compile(rb'\{"c":("(?:[^"\\]|\\.)*"),"s":(-?\d+)[,}]')


@contextmanager
def open_log(run_dir: str | os.PathLike[str]) -> Iterator[dict[str, LazySeconds]]:
    """The run's per-second data like :func:`loadtest.results.summary.load`, but read on demand from disk.

    One pass indexes the log (collector, second -> line offsets) without decoding a histogram.
    """
    path = Path(run_dir) / "data" / AGGREGATES
    data: dict[str, LazySeconds] = {}
    if not path.exists():
        yield data
        return
    log = _LogFile(path)
    try:
        with open(path, "rb") as fh:
            offset = 0
            for line in fh:
                # Fast path for a whole line; a torn one (no newline) or two run together are parsed.
                head = _HEAD.match(line) if line.endswith(b"}\n") and line.count(b'{"c":') == 1 else None
                if head is not None:
                    collector, second = json.loads(head.group(1)), int(head.group(2))
                else:
                    try:
                        record = Record.from_json(line.decode("utf-8"))
                    except (ValueError, KeyError, TypeError):
                        record = None  # blank, or torn
                    collector, second = (None, 0) if record is None else (record.collector, record.second)
                if collector is not None:
                    data.setdefault(collector, LazySeconds(log)).add(second, offset)
                offset += len(line)
        yield data
    finally:
        log.close()


def first_second(data: Data) -> int | None:
    """The origin of every frame's ``t``: the first second any collector recorded."""
    return min((min(seconds) for seconds in data.values() if seconds), default=None)


def frames(data: Data, reduction: Reduction | None = None) -> dict[str, pd.DataFrame]:
    """One frame per concern (see :data:`NAMES`); a collector that recorded nothing gives an empty
    frame with the same columns, so readers and the CSV header never depend on what ran.

    With a ``reduction``, every second is also fed to it as the frames read it, so the summary
    and the report come from one pass over the log and each histogram is decoded once."""
    if reduction is not None:
        data = {name: _Feeding(name, seconds, reduction) for name, seconds in data.items()}
    t0 = first_second(data)
    gen = _generator(data.get(generator.NAME, {}), t0)
    saturated = set(gen.index[gen["saturated"]]) if len(gen) else set()
    out = {
        "ticks": _ticks(data.get(ticks.NAME, {}), t0, saturated),
        "http": _http(data.get(http.NAME, {}), t0),
        "sessions": _sessions(data.get(sessions.NAME, {}), t0),
        "reconnect": _reconnect(data.get(reconnects.NAME, {}), t0),
        "rate_limit": _rate_limit(data.get(ratelimit.NAME, {}), t0),
        "generator": gen,
        "replay": _replay(data.get(replay.NAME, {}), t0),
    }
    if reduction is not None:
        for seconds in data.values():
            seconds.feed_rest()  # type: ignore[attr-defined]  # collectors no frame reads (cors)
    return out


class _Feeding(Mapping[int, Bucket]):
    """A collector's seconds that, as a frame reads them (in order, once each), are decoded once and
    also folded into a :class:`~loadtest.results.summary.Reduction`."""

    def __init__(self, collector: str, seconds: Mapping[int, Bucket], reduction: Reduction) -> None:
        self._collector = collector
        self._seconds = seconds
        self._reduction = reduction
        self._fed: set[int] = set()

    def __getitem__(self, second: int) -> Bucket:
        bucket = self._seconds[second]
        if not isinstance(bucket.hists, dict):
            bucket = Bucket(bucket.counts, dict(bucket.hists.items()))
        if second not in self._fed:
            self._fed.add(second)
            self._reduction.add(self._collector, second, bucket)
        return bucket

    def feed_rest(self) -> None:
        for second in sorted(set(self._seconds) - self._fed):
            self[second]  # reading a second feeds it

    def __iter__(self) -> Iterator[int]:
        return iter(self._seconds)

    def __len__(self) -> int:
        return len(self._seconds)


def read(run_dir: str | os.PathLike[str]) -> tuple[Reduction, dict[str, pd.DataFrame], int | None]:
    """The run's reduction (for the summary), frames (for the report and CSVs) and first second,
    from one pass over its log."""
    reduction = Reduction()
    with open_log(run_dir) as data:
        out = frames(data, reduction)
        t0 = first_second(data)
    return reduction, out, t0


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


def merged(buckets: Mapping[int, Bucket], keep: Callable[[str], bool]) -> dict[str, HdrHistogram]:
    """Run-wide histograms (those whose name ``keep`` accepts), one pass, one decoded second at a time."""
    out: dict[str, HdrHistogram] = {}
    for second in buckets:
        hists = buckets[second].hists
        for name in [n for n in hists if keep(n)]:  # a lazy second decodes only these
            total = out.get(name)
            if total is None:
                total = out[name] = new_histogram(hist_unit(name))
            total.add(hists[name])
    return out


# -- per concern --------------------------------------------------------------------------------


def _frame(rows: list[dict[str, Any]], seconds: list[int], t0: int | None, columns: Iterable[str]) -> pd.DataFrame:
    columns = list(columns)
    if not rows or t0 is None:
        frame = pd.DataFrame({c: pd.Series(dtype="datetime64[ns, UTC]" if c == "time" else "float64") for c in columns})
        frame.index = pd.Index([], dtype="int64", name=INDEX)
        return frame
    frame = pd.DataFrame(rows, columns=[c for c in columns if c != "time"] + _extra(rows, columns))
    frame.insert(0, "time", pd.to_datetime(seconds, unit="s", utc=True))
    frame.index = pd.Index([s - t0 for s in seconds], dtype="int64", name=INDEX)
    return frame


def _extra(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Columns named by the data (an end reason, a refusal), sorted, after the fixed ones."""
    known = set(columns)
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in known:
                seen.setdefault(key, None)
    return sorted(seen)


def _sorted(buckets: Mapping[int, Bucket]) -> Iterator[tuple[int, Bucket]]:
    for second in sorted(buckets):
        bucket = buckets[second]
        if bucket.counts or bucket.hists:  # a second whose only line was unreadable is no second
            yield second, bucket


def _ms(hist: HdrHistogram | None, p: float, scale: float = 1000.0) -> float | None:
    value = percentile(hist, p)
    return None if value is None else value / scale


def _ints(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    for c in columns:
        if c in frame:
            frame[c] = frame[c].fillna(0).astype("int64")
    return frame


def _ticks(buckets: Mapping[int, Bucket], t0: int | None, saturated: set[int]) -> pd.DataFrame:
    rows, seconds = [], []
    for second, b in _sorted(buckets):
        rate, lag, jitter = b.hists.get("tick_rate_centihz"), b.hists.get("lag_us"), b.hists.get("jitter_us")
        # The same definitions as ticks.per_second, plus lag p50 and jitter p99.
        rows.append(
            {
                "p50_hz": _ms(rate, 50, 100),
                "p5_hz": _ms(rate, 5, 100),
                "min_hz": _ms(rate, 0, 100),
                "players": int(b.counts.get("connected", 0)),
                "missed": int(b.counts.get("missed", 0)),
                "lag_p50_ms": _ms(lag, 50),
                "lag_p99_ms": _ms(lag, 99),
                "jitter_p99_ms": _ms(jitter, 99),
                "saturated": second - (t0 or 0) in saturated,
            }
        )
        seconds.append(second)
    frame = _frame(rows, seconds, t0, TICKS)
    frame["saturated"] = frame["saturated"].astype(bool)
    return _ints(frame, ("players", "missed"))


def _status_class(code: str) -> str:
    try:
        n = int(code)
    except ValueError:
        return "status_other"
    if n == 0:
        return "status_0"
    if n == 429:
        return "status_429"
    return {2: "status_2xx", 4: "status_4xx", 5: "status_5xx"}.get(n // 100, "status_other")


def _http(buckets: Mapping[int, Bucket], t0: int | None) -> pd.DataFrame:
    rows, seconds = [], []
    for second, b in _sorted(buckets):
        per: dict[str, dict[str, Any]] = {}
        for key, value in b.counts.items():
            kind, _, rest = key.partition(":")
            if kind == "requests":
                per.setdefault(rest, {})["requests"] = int(value)
            elif kind == "failures":
                per.setdefault(rest, {})["failures"] = int(value)
            elif kind == "status":
                endpoint, _, code = rest.rpartition(":")
                row = per.setdefault(endpoint, {})
                cls = _status_class(code)
                row[cls] = row.get(cls, 0) + int(value)
        for endpoint in sorted(per):
            hist = b.hists.get(f"latency:{endpoint}_us")
            p50, p95, p99 = (_ms(hist, p) for p in (50, 95, 99))
            rows.append({"endpoint": endpoint, **per[endpoint], "p50_ms": p50, "p95_ms": p95, "p99_ms": p99})
            seconds.append(second)
    frame = _frame(rows, seconds, t0, HTTP)
    frame["endpoint"] = frame["endpoint"].astype("object")
    return _ints(frame, ("requests", "failures", *STATUS_CLASSES))


def _sessions(buckets: Mapping[int, Bucket], t0: int | None) -> pd.DataFrame:
    rows, seconds = [], []
    for second, b in _sorted(buckets):
        row: dict[str, int] = {"opened": 0, "unexpected": 0, "connect_failed": 0, "protocol_errors": 0}
        for key, value in b.counts.items():
            kind, _, reason = key.partition(":")
            if kind in ("opened", "unexpected"):
                row[kind] += int(value)
            elif kind == "ended":
                row[f"ended_{reason}"] = row.get(f"ended_{reason}", 0) + int(value)
            elif kind == "connect_failed":
                row["connect_failed"] += int(value)
                row[f"connect_failed_{reason}"] = row.get(f"connect_failed_{reason}", 0) + int(value)
            elif kind == "protocol_error":
                row["protocol_errors"] += int(value)
        rows.append(row)
        seconds.append(second)
    frame = _frame(rows, seconds, t0, SESSIONS)
    return _ints(frame, [c for c in frame.columns if c != "time"])


def _reconnect(buckets: Mapping[int, Bucket], t0: int | None) -> pd.DataFrame:
    rows, seconds = [], []
    names = ("dropped", "attempts", "recovered", "gave_up", "limited", "storms")
    for second, b in _sorted(buckets):
        row: dict[str, Any] = {n: int(b.counts.get(n, 0)) for n in names}
        row["recovery_p50_s"] = _ms(b.hists.get("recovery_ms"), 50)
        rows.append(row)
        seconds.append(second)
    return _ints(_frame(rows, seconds, t0, RECONNECT), names)


def _rate_limit(buckets: Mapping[int, Bucket], t0: int | None) -> pd.DataFrame:
    fields = {"429": "responses_429", "no_retry_after": "without_retry_after"}
    fields |= {"honoured": "honoured", "not_honoured": "not_honoured"}
    rows, seconds = [], []
    for second, b in _sorted(buckets):
        per: dict[str, dict[str, int]] = {}
        for key, value in b.counts.items():
            kind, _, endpoint = key.partition(":")
            column = fields.get(kind)  # probe:* steps are the probe's, in the summary
            if column:
                row = per.setdefault(endpoint, {})
                row[column] = row.get(column, 0) + int(value)
        for endpoint in sorted(per):
            rows.append({"endpoint": endpoint, **per[endpoint]})
            seconds.append(second)
    frame = _frame(rows, seconds, t0, RATE_LIMIT)
    frame["endpoint"] = frame["endpoint"].astype("object")
    return _ints(frame, fields.values())


def _generator(buckets: Mapping[int, Bucket], t0: int | None) -> pd.DataFrame:
    rows, seconds = [], []
    for second, b in _sorted(buckets):
        cpu = b.hists.get("cpu_x100_count")
        processes = int(b.counts.get("seconds", 0))
        rows.append(
            {
                "processes": processes,
                "cpu_max_pct": None if cpu is None or not cpu.get_total_count() else cpu.get_max_value() / 100,
                "cpu_mean_pct": b.counts.get("cpu_pct_sum", 0) / processes if processes else None,
                "loop_lag_p99_ms": _ms(b.hists.get("loop_lag_us"), 99),
                "saturated": bool(b.counts.get("saturated")),
                "sessions": int(b.counts.get("sessions", 0)),
            }
        )
        seconds.append(second)
    frame = _frame(rows, seconds, t0, GENERATOR)
    frame["saturated"] = frame["saturated"].astype(bool)
    return _ints(frame, ("processes", "sessions"))


def _replay(buckets: Mapping[int, Bucket], t0: int | None) -> pd.DataFrame:
    fields = {"attempt": "attempts", "rejected": "rejected", "accepted": "accepted"}
    rows, seconds = [], []
    for second, b in _sorted(buckets):
        per: dict[str, dict[str, int]] = {}
        for key, value in b.counts.items():
            kind, _, what = key.partition(":")
            column = fields.get(kind)
            if column:
                row = per.setdefault(what, {})
                row[column] = row.get(column, 0) + int(value)
        for kind in sorted(per):
            rows.append({"kind": kind, **per[kind]})
            seconds.append(second)
    frame = _frame(rows, seconds, t0, REPLAY)
    frame["kind"] = frame["kind"].astype("object")
    return _ints(frame, fields.values())


__all__ = ["NAMES", "LazySeconds", "export_csv", "first_second", "frames", "merged", "open_log", "read"]
