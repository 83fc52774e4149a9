"""From a run folder's data to numbers: the summary every report, gate and test reads.

Works on the append-only log alone, so it gives the same answer live, at the end of a run, after a
crash, or years later with ``loadtest report``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from loadtest.aggregates import Bucket, merge_records, new_histogram, percentile, read_log
from loadtest.collectors import cors, generator, http, ratelimit, reconnects, replay, sessions, ticks
from loadtest.runlog import AGGREGATES, RUN_INFO, TARGET_METRICS

SCHEMA_VERSION = 1


def _total(buckets: dict[int, Bucket]) -> Bucket:
    total = Bucket()
    for b in buckets.values():
        total.merge(b)
    return total


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
    then to the rate the server announced in its welcome messages and 90%."""
    return summarise_data(load(run_dir), run_dir, nominal_hz=nominal_hz, threshold=threshold)


def summarise_data(
    data: dict[str, dict[int, Bucket]],
    run_dir: str | os.PathLike[str],
    *,
    nominal_hz: float | None = None,
    threshold: float | None = None,
) -> dict:
    """The summary of ``data`` (all of a run, or a window of it for sliding-window gates)."""
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

    # generator health first: tick analysis needs the saturated seconds
    gen = data.get(generator.NAME, {})
    saturated = {s for s, b in gen.items() if b.counts.get("saturated")}
    gtotal = _total(gen)
    cpu_hist = gtotal.hists.get("cpu_x100_count")
    out["generator"] = {
        # Each generating process adds one sample per second: the most in any second is their number.
        "workers": int(max((b.counts.get("seconds", 0) for b in gen.values()), default=0)),
        "cpu_max_pct": None if cpu_hist is None else round(cpu_hist.get_max_value() / 100, 1),
        "loop_lag_p99_ms": _ms(gtotal.hists.get("loop_lag_us"), 99),
        "seconds_saturated": len(saturated),
        "verdict": "saturated" if saturated else "healthy",
    }

    t = data.get(ticks.NAME, {})
    ttotal = _total(t)
    rows = ticks.per_second(t)
    rate = ttotal.hists.get("tick_rate_centihz")
    welcomes = ttotal.counts.get("welcomes", 0)
    nominal = nominal_hz or (round(ttotal.counts["nominal_hz_sum"] / welcomes, 3) if welcomes else None)
    onset = None
    if nominal:
        onset = ticks.degradation_onset(rows, nominal * threshold, saturated=saturated)
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

    st = _total(data.get(sessions.NAME, {}))
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

    rl_seconds = data.get(ratelimit.NAME, {})
    rl = _total(rl_seconds)
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
    }
    rl_probe = out["rate_limit"]["probe"]
    out["rate_limit"]["enforced"] = (
        rl_probe["enforced"] if rl_probe else (True if out["rate_limit"]["responses_429"] else None)
    )

    rp = _total(data.get(replay.NAME, {}))
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

    rc = _total(data.get(reconnects.NAME, {}))
    dropped, recovered = int(rc.counts.get("dropped", 0)), int(rc.counts.get("recovered", 0))
    rec = rc.hists.get("recovery_ms")
    out["reconnect"] = {
        "dropped": dropped,
        "dropped_by_cause": _prefixed(rc.counts, "dropped:"),
        "recovered": recovered,
        "recovered_ratio": None if dropped == 0 else round(recovered / dropped, 4),
        "recovery_p50_s": _ms(rec, 50),
        "recovery_p95_s": _ms(rec, 95),
        "recovery_max_s": None if rec is None or rec.get_total_count() == 0 else round(rec.get_max_value() / 1000, 3),
        "attempts": int(rc.counts.get("attempts", 0)),
        "limited": int(rc.counts.get("limited", 0)),
        "gave_up": int(rc.counts.get("gave_up", 0)),
        "storms": int(rc.counts.get("storms", 0)),
        "storms_failed": int(rc.counts.get("storm_failed", 0)),
        "storm_dropped": int(rc.counts.get("storm_dropped", 0)),
    }

    ht_seconds = data.get(http.NAME, {})
    ht = _total(ht_seconds)
    endpoints = sorted({k.split(":", 1)[1] for k in ht.counts if k.startswith("requests:")})
    out["http"] = {
        name: {
            "count": int(ht.counts.get(f"requests:{name}", 0)),
            "failures": int(ht.counts.get(f"failures:{name}", 0)),
            "p50_ms": _ms(ht.hists.get(f"latency:{name}_us"), 50),
            "p95_ms": _ms(ht.hists.get(f"latency:{name}_us"), 95),
            "p99_ms": _ms(ht.hists.get(f"latency:{name}_us"), 99),
            "status": _prefixed(ht.counts, f"status:{name}:"),
            "peak_per_s": int(max((b.counts.get(f"requests:{name}", 0) for b in ht_seconds.values()), default=0)),
        }
        for name in endpoints
    }
    cs = _total(data.get(cors.NAME, {}))
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


__all__ = ["load", "new_histogram", "summarise", "summarise_data", "target_metrics", "write_json", "write_summary"]
