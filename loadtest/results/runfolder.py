"""The run folder: its one writer and its one reader.

``data/aggregates.jsonl`` receives every closed second of every collector from every worker the
moment it reaches the master (or the single local process), one line each, flushed at once: a run
that is killed keeps everything up to its last second. ``data/target_metrics.jsonl`` holds the
target's own ``/metrics`` samples at the start, every few seconds, and at the end. ``run.json``
says what was run against what; ``scenario.toml`` and ``overrides.json`` keep the scenario it is
judged by; ``summary.json``, ``junit.xml``, ``report.html`` and ``data/*.csv`` are the verdict.

Everything else reads a run folder through :class:`RunFolder`, and writes one through
:class:`RunLog` (the records, as they arrive) and :meth:`RunFolder.write_json` (atomic files).
A line of the log that cannot be read is skipped and counted, except a torn last line, which is
what a killed run leaves and is no error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from loadtest.collectors.aggregates import Bucket, Record

AGGREGATES = "aggregates.jsonl"
TARGET_METRICS = "target_metrics.jsonl"
RUN_INFO = "run.json"
SUMMARY = "summary.json"
MAX_RUNS = 10_000
#: The scenario as run, kept in every run folder: ``loadtest report`` and the web UI judge by it.
SCENARIO_COPY, OVERRIDES = "scenario.toml", "overrides.json"
#: Set by ``loadtest run`` for Locust: the folder holding the scenario its web-UI runs are judged by.
SCENARIO_ENV = "LOADTEST_SCENARIO_DIR"
#: Set to ``cli`` by a headless ``loadtest run``: it judges the folder, so Locust must not first.
DRIVER_ENV = "LOADTEST_DRIVER"
#: The exit code of a Locust process that stopped because its run folder refused writes.
EXIT_NOT_CARRIED_OUT = 3



#: A target's own tick-rate gauge: a sample whose name ends in ``tick_rate_hz`` or ``tick_rate``.
_TICK_GAUGE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*tick_rate(?:_hz)?(?:\{(?P<labels>.*)\})?$")


def tick_gauge_series(scrapes: Iterable[dict[str, Any]], started: float | None) -> list[dict[str, float]]:
    """The target's tick-rate gauge at each scrape that had one (mean over its game servers), as
    ``{"at_s", "hz"}``: the server's own view of its tick rate, to set beside the players'.

    A gauge split by a ``stat`` label is read at ``stat="mean"`` (else its first stat); a scrape
    when no room ran has no gauge and no point."""
    out = []
    for entry in scrapes:
        values: list[float] = []
        fallback: list[float] = []
        for name, value in (entry.get("samples") or {}).items():
            match = _TICK_GAUGE.match(name)
            if match is None or not isinstance(value, int | float) or value != value:
                continue
            labels = match.group("labels") or ""
            if 'stat="' not in labels or 'stat="mean"' in labels:
                values.append(float(value))
            else:
                fallback.append(float(value))
        values = values or fallback
        if values and started is not None:
            at = float(entry.get("t", 0)) - float(started)
            out.append({"at_s": round(at, 3), "hz": round(sum(values) / len(values), 3)})
    return out

class RunFolderError(OSError):
    """The run folder cannot be created or written (read-only, full disk, not a folder).

    A run that cannot write its data must not run blind: the CLI reports this in one line and exits
    with "not carried out", and a Locust process that meets it mid-run stops the test.
    """

    def __init__(self, path: str | os.PathLike[str], exc: BaseException | str) -> None:
        reason = exc if isinstance(exc, str) else (getattr(exc, "strerror", None) or str(exc))
        super().__init__(f"cannot write the run folder {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def run_dirs(base: str | os.PathLike[str]) -> list[Path]:
    """The run folders of one ``loadtest run`` or Locust process: ``base`` for its first test, then
    ``base-2``, ``base-3``... for each further test started from the web UI."""
    base = Path(base)
    found = [base] if (base / "data" / AGGREGATES).exists() else []
    for n in range(2, MAX_RUNS):
        candidate = base.with_name(f"{base.name}-{n}")
        if not candidate.exists():
            break
        if (candidate / "data" / AGGREGATES).exists():
            found.append(candidate)
    return found


def next_run_dir(base: str | os.PathLike[str]) -> Path:
    """The first of ``base``, ``base-2``, ``base-3``... that holds no run data yet."""
    base = Path(base)
    if not (base / "data" / AGGREGATES).exists():
        return base
    for n in range(2, MAX_RUNS):
        candidate = base.with_name(f"{base.name}-{n}")
        if not (candidate / "data" / AGGREGATES).exists():
            return candidate
    raise RunFolderError(base, f"{MAX_RUNS} runs already; choose another output folder")


# -- writing ------------------------------------------------------------------------------------


def prepare(path: str | os.PathLike[str]) -> Path:
    """Create the run folder and prove it writable now, before any load starts."""
    folder = Path(path)
    try:
        (folder / "data").mkdir(parents=True, exist_ok=True)
        probe = folder / "data" / ".writable"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(folder, exc) from exc
    return folder


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Strict JSON (no NaN), written atomically so a reader never sees half a file, and no temp
    file left behind when the disk says no."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(data, indent=2, allow_nan=False)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunFolderError(path.parent, exc) from exc


class RunLog:
    """The appending half of a run folder, on the process that receives every record."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = prepare(out_dir)
        self.data_dir = self.out_dir / "data"
        try:
            self._aggregates = open(self.data_dir / AGGREGATES, "a", encoding="utf-8")  # noqa: SIM115
            self._target = open(self.data_dir / TARGET_METRICS, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise RunFolderError(self.out_dir, exc) from exc
        self.records_written = 0

    def write(self, records: Iterable[Record]) -> None:
        """Append and flush; :class:`RunFolderError` when the disk refuses (the caller stops the run)."""
        lines = [r.to_json() + "\n" for r in records]
        if not lines or self._aggregates.closed:
            return
        try:
            self._aggregates.writelines(lines)
            self._aggregates.flush()
        except OSError as exc:
            raise RunFolderError(self.out_dir, exc) from exc
        self.records_written += len(lines)

    def write_run_info(self, host: str, settings: Any) -> None:
        """What was run against what: the target and the player settings (no secrets live there)."""
        info = {"host": host, "started": time.time(), "settings": json.loads(settings.to_json())}
        write_json(self.out_dir / RUN_INFO, info)

    def write_target(self, phase: str, samples: dict[str, float], error: str | None = None) -> None:
        if self._target.closed:
            return
        entry: dict[str, Any] = {"t": time.time(), "phase": phase, "samples": samples}
        if error:
            entry["error"] = error
        try:
            self._target.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._target.flush()
        except OSError as exc:
            raise RunFolderError(self.out_dir, exc) from exc

    def close(self) -> None:
        for fh in (self._aggregates, self._target):
            with contextlib.suppress(OSError):  # a full disk at the last flush: what was written stays
                fh.close()


# -- reading ------------------------------------------------------------------------------------

#: The head every line of the log starts with (Record.to_json writes "c" then "s" first).
_HEAD = re.compile(rb'\{"c":("(?:[^"\\]|\\.)*"),"s":(-?\d+)[,}]')


@dataclass
class LogIndex:
    """Where each (collector, second) of the log lies, found without decoding a histogram."""

    offsets: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    lines: int = 0
    #: Lines that could not be read, a torn last line aside: each is data lost, and said so.
    unreadable: int = 0
    torn_last_line: bool = False

    def seconds(self) -> list[int]:
        return sorted({s for per in self.offsets.values() for s in per})


class RunFolder:
    """A run folder on disk: the only reader of its files."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.data_dir = self.path / "data"
        self.log_path = self.data_dir / AGGREGATES

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def has_data(self) -> bool:
        return self.log_path.exists()

    # -- small files ---------------------------------------------------------------------------

    def _json(self, name: str) -> dict[str, Any] | None:
        path = self.path / name
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def run_info(self) -> dict[str, Any]:
        return self._json(RUN_INFO) or {}

    def settings(self) -> dict[str, Any]:
        """The player settings the run was made with (as ``run.json`` recorded them)."""
        return dict(self.run_info().get("settings") or {})

    def summary(self) -> dict[str, Any] | None:
        """The verdict a previous judging wrote, if any."""
        return self._json(SUMMARY)

    def write_json(self, name: str, data: Any) -> Path:
        path = self.path / name
        write_json(path, data)
        return path

    def save_scenario(self, source: str | os.PathLike[str], overrides: list[tuple[str, Any]]) -> None:
        """Keep the scenario beside the run's data, so ``loadtest report`` judges it the same way later."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, self.path / SCENARIO_COPY)
        except OSError as exc:
            raise RunFolderError(self.path, exc) from exc
        write_json(self.path / OVERRIDES, overrides)

    def copy_scenario_from(self, other: RunFolder) -> None:
        """Each web-UI run folder keeps the scenario it is judged by, so ``loadtest report`` works on it."""
        if other.path.resolve() == self.path.resolve():
            return
        for name in (SCENARIO_COPY, OVERRIDES):
            if (other.path / name).exists():
                shutil.copyfile(other.path / name, self.path / name)

    @property
    def has_scenario(self) -> bool:
        return (self.path / SCENARIO_COPY).exists()

    def scenario(self) -> Any:
        """The scenario the run was made with: its copy of the file and the overrides given.

        A plain ``locust -f`` run has none: :class:`FileNotFoundError`."""
        from loadtest.config.scenario import load

        # A folder copied without its overrides (or written before they were kept) has none.
        path = self.path / OVERRIDES
        overrides = [tuple(o) for o in json.loads(path.read_text(encoding="utf-8"))] if path.exists() else []
        return load(self.path / SCENARIO_COPY, overrides)

    # -- the target's own metrics --------------------------------------------------------------

    def target_metrics(self) -> dict[str, Any] | None:
        """The target's own counters: first and last successful scrape, their difference, and
        when scraping stopped working."""
        path = self.data_dir / TARGET_METRICS
        if not path.exists():
            return None
        scrapes, errors = [], []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                (scrapes if entry.get("samples") else errors).append(entry)
        if not scrapes:
            return {"scraped": False, "errors": [e.get("error") for e in errors][:3]}
        first, last = scrapes[0]["samples"], scrapes[-1]["samples"]
        delta = {k: round(last[k] - first.get(k, 0.0), 6) for k in last if k.split("{", 1)[0].endswith("_total")}
        # Scraping that stopped working: failures after the last success, from the first of them.
        after = [e for e in errors if float(e.get("t", 0)) > float(scrapes[-1].get("t", 0))]
        started = self.run_info().get("started") or scrapes[0].get("t")
        failing_from = None if not after or started is None else round(float(after[0]["t"]) - float(started))
        return {
            "scraped": True,
            "scrapes": len(scrapes),
            "failed_scrapes": len(errors),
            "failing_from_s": failing_from,
            "errors": [e.get("error") for e in after][:3],
            "start": first,
            "end": last,
            "delta": delta,
            "tick_gauge": tick_gauge_series(scrapes, started),
        }

    # -- the log -------------------------------------------------------------------------------

    def index(self) -> LogIndex:
        """One pass over the log's text: where every (collector, second) lies."""
        index = LogIndex()
        if not self.log_path.exists():
            return index
        with open(self.log_path, "rb") as fh:
            offset = 0
            for line in fh:
                index.lines += 1
                # Fast path for a whole line; a torn one (no newline) or two run together are parsed.
                head = _HEAD.match(line) if line.endswith(b"}\n") and line.count(b'{"c":') == 1 else None
                if head is not None:
                    collector, second = json.loads(head.group(1)), int(head.group(2))
                else:
                    record = _record(line)
                    if record is None:
                        if line.strip():
                            if line.endswith(b"\n"):
                                index.unreadable += 1
                            else:
                                index.torn_last_line = True
                        offset += len(line)
                        continue
                    collector, second = record.collector, record.second
                index.offsets.setdefault(collector, {}).setdefault(second, []).append(offset)
                offset += len(line)
        return index

    def seconds(self, index: LogIndex | None = None, collectors: Iterable[str] | None = None) -> Iterator[Second]:
        """Every second of the run in time order, each collector's share merged across workers.

        Each histogram is decoded once, when its second is reached; nothing of an earlier second
        is held here, so an hour-long run costs one second of histograms at a time."""
        index = self.index() if index is None else index
        wanted = None if collectors is None else set(collectors)
        offsets = {c: per for c, per in index.offsets.items() if wanted is None or c in wanted}
        if not offsets:
            return
        with open(self.log_path, "rb") as fh:
            for second in sorted({s for per in offsets.values() for s in per}):
                buckets: dict[str, Bucket] = {}
                for collector, per in offsets.items():
                    lines = per.get(second)
                    if lines:
                        bucket = _merged(fh, lines)
                        if bucket is not None:
                            buckets[collector] = bucket
                if buckets:
                    yield Second(second, buckets)

    def records(self) -> Iterator[Record]:
        """Every readable record, in the order written (for tests and tools; judging uses
        :meth:`seconds`)."""
        if not self.log_path.exists():
            return
        with open(self.log_path, "rb") as fh:
            for line in fh:
                record = _record(line)
                if record is not None:
                    yield record

    def tail(self) -> LogTail:
        return LogTail(self.log_path)


@dataclass(frozen=True)
class Second:
    """One second of a run: each collector's bucket, merged across workers."""

    second: int
    buckets: dict[str, Bucket]


def _record(line: bytes) -> Record | None:
    try:
        return Record.from_json(line.decode("utf-8"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _merged(fh: BinaryIO, offsets: list[int]) -> Bucket | None:
    merged: Bucket | None = None
    for offset in offsets:
        fh.seek(offset)
        record = _record(fh.readline())
        if record is None:
            continue
        if merged is None:
            merged = record.bucket()
        else:
            merged.merge(record.bucket())
    return merged  # None: a second whose only line was unreadable is no second


class LogTail:
    """The records appended to a log since the last look: live consumers never re-read it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.unreadable = 0

    def poll(self) -> list[Record]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # a line still being written stays for next time
        out = []
        for line in lines:
            if not line.strip():
                continue
            record = _record(line)
            if record is None:
                self.unreadable += 1
            else:
                out.append(record)
        return out
