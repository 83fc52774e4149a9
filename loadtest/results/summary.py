"""From a run folder's data to numbers: the summary every report, gate and test reads.

Works on the append-only log alone, so it gives the same answer live, at the end of a run, after a
crash, or years later with ``loadtest report``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.collectors import cors, generator, http, ratelimit, reconnects, replay, sessions, ticks
from loadtest.collectors.aggregates import Bucket, merge_records, new_histogram, percentile, read_log
from loadtest.results.runfolder import AGGREGATES, RUN_INFO, TARGET_METRICS

SCHEMA_VERSION = 1


def _ms(hist: Any, p: float, scale: float = 1000.0) -> float | None:
    v = percentile(hist, p)
    return None if v is None else round(v / scale, 3)


def _prefixed(counts: Counter[str], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: int(v) for k, v in sorted(counts.items()) if k.startswith(prefix)}


def load(run_dir: str | os.PathLike[str]) -> dict[str, dict[int, Bucket]]:
    path = Path(run_dir) / "data" / AGGREGATES
    return merge_records(read_log(str(path))) if path.exists() else {}


def target_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The target's own counters: first and last successful scrape, and their difference."""
    path = Path(run_dir) / "data" / TARGET_METRICS
    if not path.exists():
        return None
    scrapes = []
    errors = []
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
    return {"scraped": True, "scrapes": len(scrapes), "start": first, "end": last, "delta": delta}


def summarise(
    run_dir: str | os.PathLike[str], *, nominal_hz: float | None = None, threshold: float | None = None
) -> dict:
    """The run's numbers. ``nominal_hz`` and ``threshold`` default to the run's settings (run.json),
    then to the rate the server announced in its welcome messages and 90%.

    The log is read one second at a time (:func:`loadtest.results.frames.open_log`), so an hour-long run
    costs its totals in memory, not an hour of decoded histograms."""
    from loadtest.results.frames import open_log

    with open_log(run_dir) as data:
        reduction = Reduction.of(data)
    return summarise_reduction(reduction, run_dir, nominal_hz=nominal_hz, threshold=threshold)


def summarise_data(
    data: Mapping[str, Mapping[int, Bucket]],
    run_dir: str | os.PathLike[str],
    *,
    nominal_hz: float | None = None,
    threshold: float | None = None,
) -> dict:
    """The summary of ``data`` (all of a run, or a window of it for sliding-window gates)."""
    return summarise_reduction(Reduction.of(data), run_dir, nominal_hz=nominal_hz, threshold=threshold)


@dataclass
class StormSegment:
    """From one storm to the next: what it dropped and how the players came back."""

    second: int
    sides: tuple[str, ...]
    bucket: Bucket = field(default_factory=Bucket)


class Reduction:
    """Run totals plus the few per-second facts the summary needs, fed one merged second at a time.

    The final summary feeds it every second of the log in order; the live web UI feeds it each
    second as it closes. Both read their numbers off :func:`summarise_reduction`, so what the UI
    shows during a run is what the report says after it (one source of truth), and neither holds
    more than the totals and one small row per second.
    """

    def __init__(self) -> None:
        self.totals: dict[str, Bucket] = {}
        self.first_second: int | None = None
        self.last_second: int | None = None
        self.tick_rows: list[ticks.TickSecond] = []
        self.saturated: set[int] = set()
        self.generator_processes = 0
        self.http_peak: Counter[str] = Counter()
        self.storms: list[StormSegment] = []
        #: collector -> (second, counts) of the newest second seen: the "now" of a live view.
        self.latest: dict[str, tuple[int, Counter[str]]] = {}

    @classmethod
    def of(cls, data: Mapping[str, Mapping[int, Bucket]]) -> Reduction:
        reduction = cls()
        for collector, seconds in data.items():
            for second in sorted(seconds):
                reduction.add(collector, second, seconds[second])
        return reduction

    def total(self, collector: str) -> Bucket:
        return self.totals.get(collector) or Bucket()

    def add(self, collector: str, second: int, bucket: Bucket) -> None:
        """One second of one collector, merged across workers; seconds of a collector in order."""
        if not isinstance(bucket.hists, dict):
            # A lazily decoded second (series.open_log): decode each histogram once, here.
            bucket = Bucket(bucket.counts, dict(bucket.hists.items()))
        total = self.totals.get(collector)
        if total is None:
            total = self.totals[collector] = Bucket()
        total.merge(bucket)
        self.first_second = second if self.first_second is None else min(self.first_second, second)
        self.last_second = second if self.last_second is None else max(self.last_second, second)
        counts = bucket.counts
        previous = self.latest.get(collector)
        if previous is None or second >= previous[0]:
            self.latest[collector] = (second, Counter(counts))
        if collector == ticks.NAME:
            self.tick_rows.append(ticks.row(second, bucket))
        elif collector == generator.NAME:
            if counts.get("saturated"):
                self.saturated.add(second)
            self.generator_processes = max(self.generator_processes, int(counts.get("seconds", 0)))
        elif collector == http.NAME:
            for key, value in counts.items():
                if key.startswith("requests:"):
                    name = key.split(":", 1)[1]
                    self.http_peak[name] = max(self.http_peak[name], int(value))
        elif collector == reconnects.NAME:
            if counts.get("storms"):
                sides = tuple(sorted(k.split(":", 1)[1] for k in counts if k.startswith("storm:")))
                self.storms.append(StormSegment(second, sides))
            if self.storms:
                self.storms[-1].bucket.merge(bucket)

    def add_late(self, collector: str, bucket: Bucket) -> None:
        """A second that arrived after its row was made (a worker's last flush): totals only."""
        self.totals.setdefault(collector, Bucket()).merge(bucket)


def summarise_reduction(
    reduction: Reduction,
    run_dir: str | os.PathLike[str],
    *,
    nominal_hz: float | None = None,
    threshold: float | None = None,
) -> dict:
    """The summary's data sections, from a :class:`Reduction` and the folder's ``run.json``."""
    red = reduction
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    info_path = Path(run_dir) / RUN_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    settings = info.get("settings", {})
    nominal_hz = nominal_hz or settings.get("nominal_tick_rate")
    threshold = threshold or settings.get("degradation_threshold") or 0.9
    host = str(info.get("host") or "")
    out["run"] = {
        "target": info.get("host"),
        "started": info.get("started"),
        # Marked loudly: numbers from a run that skipped certificate checks say nothing about TLS.
        "tls_verification": "n/a (plain http)"
        if host.startswith("http://")
        else ("off (insecure)" if settings.get("insecure") else "on"),
        "reconnect_policy": settings.get("reconnect", {}).get("kind"),
        "source_addresses": len(settings.get("source_addresses", [])),
    }

    gtotal = red.total(generator.NAME)
    cpu_hist = gtotal.hists.get("cpu_x100_count")
    out["generator"] = {
        # Each generating process adds one sample per second: the most in any second is their number.
        "workers": red.generator_processes,
        "cpu_max_pct": None if cpu_hist is None else round(cpu_hist.get_max_value() / 100, 1),
        "loop_lag_p99_ms": _ms(gtotal.hists.get("loop_lag_us"), 99),
        "seconds_saturated": len(red.saturated),
        "verdict": "saturated" if red.saturated else "healthy",
        "per_worker": generator.per_worker(gtotal),
    }

    ttotal = red.total(ticks.NAME)
    rows = red.tick_rows
    rate = ttotal.hists.get("tick_rate_centihz")
    welcomes = ttotal.counts.get("welcomes", 0)
    nominal = nominal_hz or (round(ttotal.counts["nominal_hz_sum"] / welcomes, 3) if welcomes else None)
    onset = None
    if nominal:
        onset = ticks.degradation_onset(rows, nominal * threshold, saturated=red.saturated)
    out["tick"] = {
        "nominal_hz": nominal,
        "threshold_hz": None if not nominal else round(nominal * threshold, 3),
        "p50_hz": _ms(rate, 50, 100),
        "p5_hz": _ms(rate, 5, 100),
        "min_hz": _ms(rate, 0, 100),
        "ticks_received": int(ttotal.counts.get("ticks", 0)),
        "missed_ticks": int(ttotal.counts.get("missed", 0)),
        "out_of_order": int(ttotal.counts.get("out_of_order", 0)),
        "lag_p50_ms": _ms(ttotal.hists.get("lag_us"), 50),
        "lag_p99_ms": _ms(ttotal.hists.get("lag_us"), 99),
        "jitter_p99_ms": _ms(ttotal.hists.get("jitter_us"), 99),
        "input_rtt_p50_ms": _ms(ttotal.hists.get("input_rtt_us"), 50),
        "input_rtt_p99_ms": _ms(ttotal.hists.get("input_rtt_us"), 99),
        "degradation": None
        if onset is None
        else {"onset_second": onset.second, "players": onset.players, "p5_hz": onset.p5_hz},
        "seconds": len(rows),
        "peak_players": max((r.players for r in rows), default=0),
    }

    st = red.total(sessions.NAME)
    out["ws"] = {
        "sessions_opened": int(st.counts.get("opened", 0)),
        "connect_p50_ms": _ms(st.hists.get("connect_us"), 50),
        "connect_p95_ms": _ms(st.hists.get("connect_us"), 95),
        "connect_failed": _prefixed(st.counts, "connect_failed:"),
        "connect_failed_total": sum(_prefixed(st.counts, "connect_failed:").values()),
        "ended": _prefixed(st.counts, "ended:"),
        "unexpected_disconnects": int(st.counts.get("unexpected", 0)),
        "messages": int(ttotal.counts.get("messages", 0)),
    }
    out["protocol_errors"] = {
        "http": _prefixed(st.counts, "protocol_error:"),
        "ws": _prefixed(ttotal.counts, "protocol_error:"),
    }
    out["protocol_errors"]["total"] = sum(out["protocol_errors"]["http"].values()) + sum(
        out["protocol_errors"]["ws"].values()
    )

    rl = red.total(ratelimit.NAME)
    honoured = sum(_prefixed(rl.counts, "honoured:").values())
    not_honoured = sum(_prefixed(rl.counts, "not_honoured:").values())
    out["rate_limit"] = {
        "responses_429": _prefixed(rl.counts, "429:"),
        "responses_429_total": sum(_prefixed(rl.counts, "429:").values()),
        "without_retry_after": _prefixed(rl.counts, "no_retry_after:"),
        "retry_after_p50_s": _ms(rl.hists.get("retry_after_ms"), 50),
        "retry_after_honoured": honoured,
        "retry_after_not_honoured": not_honoured,
        "retry_after_honoured_ratio": None
        if honoured + not_honoured == 0
        else round(honoured / (honoured + not_honoured), 4),
        "probe": _rate_limit_probe(rl),
        "seat_hoarding": ratelimit.seat_hoarding(rl.counts),
    }
    rl_probe = out["rate_limit"]["probe"]
    out["rate_limit"]["enforced"] = (
        rl_probe["enforced"] if rl_probe else (True if out["rate_limit"]["responses_429"] else None)
    )

    rp = red.total(replay.NAME)
    kinds = sorted({k.split(":", 1)[1] for k in rp.counts if k.split(":", 1)[0] in ("attempt", "accepted", "rejected")})
    out["replay"] = {
        "refused_ticket": _prefixed(rp.counts, "refused_ticket:"),
        "refused_jwt": _prefixed(rp.counts, "refused_jwt:"),
        "skipped": _prefixed(rp.counts, "skipped:"),
        "attempts": sum(_prefixed(rp.counts, "attempt:").values()),
        "rejected": sum(_prefixed(rp.counts, "rejected:").values()),
        "accepted": sum(_prefixed(rp.counts, "accepted:").values()),
        "by_kind": {
            k: {
                "attempts": int(rp.counts.get(f"attempt:{k}", 0)),
                "rejected": int(rp.counts.get(f"rejected:{k}", 0)),
                "accepted": int(rp.counts.get(f"accepted:{k}", 0)),
            }
            for k in kinds
        },
    }

    rc = red.total(reconnects.NAME)
    out["reconnect"] = {
        **_recoveries(rc),
        "dropped_by_cause": _prefixed(rc.counts, "dropped:"),
        "attempts": int(rc.counts.get("attempts", 0)),
        "limited": int(rc.counts.get("limited", 0)),
        "resumed": int(rc.counts.get("resumed", 0)),
        "resume_refused": int(rc.counts.get("resume_refused", 0)),
        "storms": int(rc.counts.get("storms", 0)),
        "storms_failed": int(rc.counts.get("storm_failed", 0)),
        "storm_dropped": int(rc.counts.get("storm_dropped", 0)),
        "by_storm": [_storm(segment, red.first_second) for segment in red.storms],
    }

    ht = red.total(http.NAME)
    endpoints = sorted({k.split(":", 1)[1] for k in ht.counts if k.startswith("requests:")})
    out["http"] = {
        name: {
            "count": int(ht.counts.get(f"requests:{name}", 0)),
            "failures": int(ht.counts.get(f"failures:{name}", 0)),
            "p50_ms": _ms(ht.hists.get(f"latency:{name}_us"), 50),
            "p95_ms": _ms(ht.hists.get(f"latency:{name}_us"), 95),
            "p99_ms": _ms(ht.hists.get(f"latency:{name}_us"), 99),
            "status": _prefixed(ht.counts, f"status:{name}:"),
            "peak_per_s": red.http_peak[name],
        }
        for name in endpoints
    }
    cs = red.total(cors.NAME)
    findings = [
        {"finding": kind, "origin": where.rsplit(" ", 1)[0], "path": where.rsplit(" ", 1)[1]}
        for kind_where in _prefixed(cs.counts, "finding:")
        for kind, where in [kind_where.split(":", 1)]
    ]
    out["cors"] = (
        None
        if not cs.counts
        else {
            "checked": sum(_prefixed(cs.counts, "checked:").values()),
            "ok": sum(_prefixed(cs.counts, "ok:").values()),
            "findings": findings,
        }
    )
    out["target_metrics"] = target_metrics(run_dir)
    return out


def _recoveries(b: Bucket) -> dict[str, Any]:
    """Drops and how the players came back, for the whole run or from one storm to the next."""
    dropped, recovered = int(b.counts.get("dropped", 0)), int(b.counts.get("recovered", 0))
    rec = b.hists.get("recovery_ms")
    return {
        "dropped": dropped,
        "recovered": recovered,
        "recovered_ratio": None if dropped == 0 else round(recovered / dropped, 4),
        "recovery_p50_s": _ms(rec, 50),
        "recovery_p95_s": _ms(rec, 95),
        "recovery_max_s": None if rec is None or rec.get_total_count() == 0 else round(rec.get_max_value() / 1000, 3),
        "gave_up": int(b.counts.get("gave_up", 0)),
    }


def _storm(segment: StormSegment, first_second: int | None) -> dict[str, Any]:
    return {
        "at_s": segment.second - (first_second if first_second is not None else segment.second),
        "sides": list(segment.sides),
        **_recoveries(segment.bucket),
    }


def _rate_limit_probe(rl: Bucket) -> dict[str, Any] | None:
    """Steps of the rate-limit probe, the rate at which 429s began, and the sustained limit."""
    steps: dict[tuple[str, float], dict[str, float]] = {}
    for key, value in rl.counts.items():
        if not key.startswith("probe:"):
            continue
        _, endpoint, rate, field = key.split(":")
        steps.setdefault((endpoint, float(rate)), {})[field] = value
    if not steps:
        return None
    rows = []
    for (endpoint, rate), f in sorted(steps.items(), key=lambda kv: kv[0][1]):
        seconds = f.get("seconds") or 1.0
        rows.append(
            {
                "endpoint": endpoint,
                "offered_rate": rate,
                "sent": int(f.get("offered", 0)),
                "accepted": int(f.get("accepted", 0)),
                "limited": int(f.get("limited", 0)),
                "other": int(f.get("other", 0) + f.get("error", 0)),
                "accepted_rate": round(f.get("accepted", 0) / seconds, 3),
            }
        )
    first = next((i for i, r in enumerate(rows) if r["limited"]), None)
    limit = None
    if first is not None:
        # After the first limited step the bucket is empty: later steps accept at the sustained rate.
        later = [r["accepted_rate"] for r in rows[first + 1 :]] or [rows[first]["accepted_rate"]]
        later.sort()
        limit = later[len(later) // 2]
    return {
        "endpoint": rows[0]["endpoint"],
        "steps": rows,
        "limited_from_rate": None if first is None else rows[first]["offered_rate"],
        "estimated_limit_per_s": limit,
        "retry_after_p50_s": _ms(rl.hists.get("probe_retry_after_ms"), 50),
        "enforced": first is not None,
    }


def write_summary(run_dir: str | os.PathLike[str], *, incomplete: bool, **kwargs: Any) -> dict:
    summary = summarise(run_dir, **kwargs)
    summary["incomplete"] = incomplete
    write_json(Path(run_dir) / "summary.json", summary)
    return summary


def write_json(path: Path, data: Any) -> None:
    """Strict JSON (no NaN), written atomically so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite(data), indent=2, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


__all__ = [
    "Reduction",
    "load",
    "new_histogram",
    "summarise",
    "summarise_data",
    "summarise_reduction",
    "target_metrics",
    "write_json",
    "write_summary",
]
