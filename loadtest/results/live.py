"""Live progress from the run log as it grows: the one-line status ``loadtest run`` prints.

Reads only what was appended since the last look, keeps a few recent seconds, and never holds the
whole run in memory.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from loadtest.collectors.aggregates import Bucket, Record, percentile
from loadtest.results.runfolder import AGGREGATES

KEEP_SECONDS = 10


class LiveLog:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "data" / AGGREGATES
        self._offset = 0
        self._partial = ""
        self.totals: dict[str, Counter[str]] = {}
        self.recent: dict[str, dict[int, Bucket]] = {}

    def poll(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
            self._offset = fh.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()  # a line still being written stays for next time
        count = 0
        for line in lines:
            if not line.strip():
                continue
            try:
                record = Record.from_json(line)
            except (ValueError, KeyError, TypeError):
                continue
            count += 1
            self.totals.setdefault(record.collector, Counter()).update(record.counts)
            per = self.recent.setdefault(record.collector, {})
            bucket = per.get(record.second)
            if bucket is None:
                per[record.second] = record.bucket()
            else:
                bucket.merge(record.bucket())
            for old in [s for s in per if s < record.second - KEEP_SECONDS]:
                del per[old]
        return count

    def _latest(self, collector: str) -> Bucket | None:
        per = self.recent.get(collector, {})
        # The newest second may still be filling up across workers; show the one before it.
        seconds = sorted(per)
        return per[seconds[-2]] if len(seconds) >= 2 else (per[seconds[-1]] if seconds else None)

    def status(self) -> str:
        ticks = self._latest("ticks")
        players = int(ticks.counts.get("connected", 0)) if ticks else 0
        p5 = percentile(ticks.hists.get("tick_rate_centihz"), 5) if ticks else None
        sessions = self.totals.get("sessions", Counter())
        rate_limit = self.totals.get("rate_limit", Counter())
        limited = sum(v for k, v in rate_limit.items() if k.startswith("429:"))
        errors = sessions.get("unexpected", 0) + sum(
            v for k, v in sessions.items() if k.startswith(("connect_failed:", "protocol_error:"))
        )
        saturated = self.totals.get("generator", Counter()).get("saturated", 0)
        tick = f"{p5 / 100:.1f} Hz" if p5 is not None else "-"
        return (
            f"players {players:>5}  sessions {int(sessions.get('opened', 0)):>6}  tick p5 {tick:>8}  "
            f"429s {int(limited):>5}  errors {int(errors):>5}"
            + (f"  generator saturated {int(saturated)}s" if saturated else "")
        )
