"""``report.html``: one file a reviewer can open anywhere, offline, attached to a CI run or a ticket.

Everything it needs is inside it: charts are base64 PNGs, the one stylesheet is inline, and a
Content-Security-Policy forbids fetching anything else, so a report that renders correctly proves
it depends on nothing external. It is built from the summary (the verdicts) and the per-second
data (the charts and ``data/*.csv``), and it is built for broken runs too: an interrupted run gets
a loud banner and whatever seconds were written; an empty log gets a report that says so.
"""

from __future__ import annotations

import base64
import io
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from loadtest.collectors import http, reconnects, sessions
from loadtest.collectors.aggregates import percentile
from loadtest.results import frames as series
from loadtest.results.reduction import Reduction, read
from loadtest.results.runfolder import RunFolder, RunFolderError

# The report is drawn headless (CI, a server); pyplot is never imported here, and whoever imports
# it later in this process gets Agg too rather than a GUI backend that needs a display.
matplotlib.use("Agg")

REPORT = "report.html"
DPI = 90
WIDE = (11.0, 3.3)
#: Points a per-second latency line is reduced to (medians of equal windows) on long runs.
SMOOTH_POINTS = 300
#: Endpoints drawn in the latency chart (the busiest); the tables list them all.
MAX_ENDPOINTS_DRAWN = 6
#: Target counters listed; a backend exposing thousands is cut here (summary.json has them all).
MAX_TARGET_ROWS = 200
COLOURS = {
    "p50": "#1f77b4",
    "p5": "#ff7f0e",
    "min": "#9467bd",
    "nominal": "#555555",
    "threshold": "#d62728",
    "saturated": "#f2c14e",
    "429": "#d62728",
    "ok": "#2ca02c",
    "bad": "#d62728",
}
#: Stacked bottom-up: 429s first, so they stand on the axis however many 2xx sit above them.
STATUS_COLOURS = {
    "status_429": ("429 rate limited", COLOURS["429"]),
    "status_5xx": ("5xx", "#7b2d26"),
    "status_0": ("no response", "#444444"),
    "status_4xx": ("4xx (not 429)", "#f0a35e"),
    "status_other": ("other", "#b0b0b0"),
    "status_2xx": ("2xx", "#8fbf8f"),
}


@dataclass(frozen=True)
class Chart:
    title: str
    caption: str
    png: str  # base64
    #: What a healthy run looks like in this chart, in one sentence.
    good: str = ""


def build_report(
    run_dir: str | os.PathLike[str],
    summary: Mapping[str, Any],
    reduction: Reduction | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """Write ``<run_dir>/report.html`` and ``<run_dir>/data/<frame>.csv``; returns the report's path.

    ``reduction`` and ``tables`` come from the caller's one pass over the folder (the summary came
    from the same pass); without them the folder is read here. The summary is taken as given, so
    gates and findings added by the caller appear exactly as judged.
    """
    run_dir = Path(run_dir)
    if reduction is None:
        reduction = read(RunFolder(run_dir)).reduction
    frames = tables if tables is not None else series.frames(reduction)
    t0 = reduction.first_second

    def hists(collector: str, keep: Callable[[str], bool]) -> dict[str, Any]:
        return {name: h for name, h in reduction.total(collector).hists.items() if keep(name)}

    totals = {
        http.NAME: hists(http.NAME, lambda n: http.LATENCY.parse(n) is not None),
        sessions.NAME: hists(sessions.NAME, lambda n: n == sessions.CONNECT()),
        reconnects.NAME: hists(reconnects.NAME, lambda n: n == reconnects.RECOVERY()),
    }
    series.export_csv(frames, run_dir / "data")
    context = _context(summary, frames, totals, t0)
    html = _environment().get_template(REPORT).render(**context)
    path = run_dir / REPORT
    tmp = path.with_suffix(".html.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunFolderError(run_dir, exc) from exc
    return path


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loadtest.results", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = fmt
    return env


# -- context --------------------------------------------------------------------------------------


def _context(
    summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], totals: dict[str, dict[str, Any]], t0: int | None
) -> dict[str, Any]:
    span = _span(frames)
    header = _header(summary, t0, span)
    gates = [
        {
            "name": g.get("name") or g.get("expression") or "",
            "expression": g.get("expression") or "",
            "value": g.get("value"),
            "passed": bool(g.get("passed")),
            "message": _gate_words(g),
        }
        for g in summary.get("gates") or []
    ]
    return {
        "header": header,
        "reason": outcome_reason(summary, header),
        "concerns": concerns(summary),
        "has_data": t0 is not None,
        "gates": gates,
        "findings": [str(f) for f in summary.get("findings") or []],
        "charts": _charts(summary, frames, totals, t0, span),
        "latency_tables": _latency_tables(summary, frames, totals),
        "sections": _sections(summary),
        "target": _target_metrics(summary),
    }


def _gate_words(gate: Mapping[str, Any]) -> str:
    """The gate's message without the value and verdict the table's own columns already show."""
    message = str(gate.get("message") or "")
    head, _, tail = message.partition(": ")
    metric = str(gate.get("metric") or str(gate.get("expression") or "").split(" ", 1)[0])
    if tail.lower() in ("passed", "failed") and head.startswith(metric):
        extra = head.partition("(")[2].rstrip(")")
        return extra  # e.g. "worst 10s window"; nothing when the message only repeated the value
    return message


def _header(summary: Mapping[str, Any], t0: int | None, span: int) -> dict[str, Any]:
    scenario = summary.get("scenario") or {}
    run = summary.get("run") or {}
    gen = summary.get("generator") or {}
    integrity = summary.get("integrity") or {}
    gates = summary.get("gates") or []
    incomplete, aborted = bool(summary.get("incomplete")), summary.get("aborted")
    passed = summary.get("passed")
    if not isinstance(passed, bool):
        # No verdict handed down: a run passes when it ran to the end and every gate held.
        passed = not incomplete and not aborted and all(g.get("passed") for g in gates)
    started = run.get("started") or t0
    planned = scenario.get("duration_s", scenario.get("duration"))
    outcome = summary.get("outcome") or ("passed" if passed else "failed")
    return {
        "scenario": scenario.get("name") or "(no scenario)",
        "description": scenario.get("description"),
        "target": _redact(run.get("target")),
        "started": _utc(started),
        "duration": _duration(span) if span else "no data",
        "planned": _duration(planned) if isinstance(planned, int | float) else None,
        "users": scenario.get("users") if scenario.get("users") is not None else summary.get("users"),
        "peak_players": (summary.get("tick") or {}).get("peak_players"),
        "passed": passed,
        "outcome": outcome,
        "mark": "pass" if passed else ("skip" if outcome == "not carried out" else "fail"),
        "not_carried_out": integrity.get("carried_out") is False,
        "reasons": list(integrity.get("reasons") or []),
        "notes": list(integrity.get("notes") or []),
        "incomplete": incomplete,
        "aborted": bool(aborted),
        "aborted_reason": aborted if isinstance(aborted, str) else None,
        "generator_verdict": gen.get("verdict", "unknown"),
        "seconds_saturated": gen.get("seconds_saturated", 0),
        "tls": run.get("tls_verification") or "unknown",
        "reconnect_policy": run.get("reconnect_policy"),
        "workers": scenario.get("workers"),
        "defects": ", ".join(scenario.get("defects") or []),
    }


def outcome_reason(summary: Mapping[str, Any], header: Mapping[str, Any]) -> str:
    """Why the run got its outcome, in one sentence."""
    gates = summary.get("gates") or []
    failed = [g for g in gates if not g.get("passed")]
    reasons = header["reasons"]
    if header["not_carried_out"]:
        return "Not carried out: " + "; ".join(reasons) + ". No gate can pass a run that did not do its plan."
    if header["aborted"]:
        return f"The run was aborted ({header['aborted_reason'] or 'no reason recorded'})."
    if failed:
        names = ", ".join(f"{g.get('name')} (value {fmt(g.get('value'))})" for g in failed)
        return f"{len(failed)} of {len(gates)} gate(s) failed: {names}."
    if not gates:
        return "The run was carried out as planned; no gates were set, so nothing was judged."
    return f"The run was carried out as planned and all {len(gates)} gate(s) held."


#: The marks of the verdict lines: a word in a box, read without colour.
MARKS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "NOT CHECKED", "info": "INFO"}


def _line(concern: str, mark: str, text: str) -> dict[str, str]:
    return {"concern": concern, "mark": mark, "label": MARKS[mark], "text": text}


def concerns(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """One line in words per concern, each with its mark: what a reader needs before any table."""
    return [
        line
        for rule in (_c_integrity, _c_ticks, _c_replay, _c_rate_limits, _c_reconnects, _c_http, _c_generator, _c_cors)
        if (line := rule(summary)) is not None
    ]


def _c_integrity(s: Mapping[str, Any]) -> dict[str, str]:
    ig = s.get("integrity") or {}
    if not ig:
        return _line("Run integrity", "skip", "No plan was recorded for this run.")
    if ig.get("carried_out") is False:
        return _line("Run integrity", "fail", "Not carried out: " + "; ".join(ig.get("reasons") or []) + ".")
    parts = []
    if ig.get("planned_users") is not None:
        parts.append(f"{fmt(ig.get('peak_connected'))} of {fmt(ig['planned_users'])} planned players connected")
    if ig.get("workers_expected"):
        parts.append(f"{fmt(ig.get('workers_seen'))} of {fmt(ig['workers_expected'])} workers")
    storms = ig.get("storms") or []
    if storms:
        parts.append(f"{sum(1 for x in storms if x.get('carried_out'))} of {len(storms)} storms set off")
    probes = ig.get("probes") or []
    if probes:
        parts.append(f"{sum(1 for x in probes if x.get('checked'))} of {len(probes)} probes ran")
    text = "Carried out as planned" + (": " + ", ".join(parts) if parts else "") + "."
    if ig.get("notes"):
        text += " " + " ".join(ig["notes"])
    return _line("Run integrity", "pass", text)


def _c_ticks(s: Mapping[str, Any]) -> dict[str, str]:
    from loadtest.results.findings import server_client_gap

    tick = s.get("tick") or {}
    if not tick.get("ticks_received"):
        return _line("Tick rate", "skip", "No session received a tick.")
    nominal, threshold = tick.get("nominal_hz"), tick.get("threshold_hz")
    rates = f"p50 {fmt(tick.get('p50_hz'))} Hz, p5 {fmt(tick.get('p5_hz'))} Hz, slowest {fmt(tick.get('min_hz'))} Hz"
    against = f" against the nominal {fmt(nominal)} Hz (threshold {fmt(threshold)} Hz)" if nominal else ""
    missed = f"; {fmt(tick['missed_ticks'])} ticks never arrived" if tick.get("missed_ticks") else ""
    gap = server_client_gap(dict(s))
    server = ""
    if gap is not None:
        server = f"; the server's own gauge says {gap[0]:.1f} Hz while players measured {gap[1]:.1f} Hz"
    onset = tick.get("degradation")
    if onset:
        return _line(
            "Tick rate",
            "fail",
            f"Fell below {fmt(threshold)} Hz at {fmt(onset.get('players'))} players (p5 {fmt(onset.get('p5_hz'))} Hz "
            f"from {_utc(onset.get('onset_second'))}); run-wide {rates}{missed}{server}.",
        )
    mark = "warn" if gap is not None or tick.get("missed_ticks") else "pass"
    peak = f" with up to {fmt(tick.get('peak_players'))} players" if tick.get("peak_players") else ""
    return _line("Tick rate", mark, f"Held{peak}: {rates}{against}{missed}{server}.")


def _c_replay(s: Mapping[str, Any]) -> dict[str, str]:
    rp = s.get("replay") or {}
    if not rp.get("attempts"):
        return _line("Replay and forgery", "skip", "No replay or forgery probe ran.")
    by_kind = rp.get("by_kind") or {}
    bad = [k for k, v in by_kind.items() if v.get("accepted")]
    if bad:
        return _line(
            "Replay and forgery",
            "fail",
            f"{fmt(rp['accepted'])} of {fmt(rp['attempts'])} attempts were accepted ({', '.join(bad)}).",
        )
    return _line(
        "Replay and forgery", "pass", f"All {fmt(rp['attempts'])} attempts of {len(by_kind)} kinds were refused."
    )


def _c_rate_limits(s: Mapping[str, Any]) -> dict[str, str]:
    rl = s.get("rate_limit") or {}
    probe = rl.get("probe")
    met = int(rl.get("responses_429_total") or 0)
    extra = []
    if met:
        extra.append(f"players met {fmt(met)} 429s")
    if rl.get("retry_after_not_honoured"):
        extra.append(f"Retry-After not honoured {fmt(rl['retry_after_not_honoured'])} times")
    missing = sum((rl.get("without_retry_after") or {}).values())
    if missing:
        extra.append(f"{fmt(missing)} 429s without Retry-After")
    tail = ("; " + ", ".join(extra)) if extra else ""
    if probe:
        if probe.get("enforced"):
            text = (
                f"{probe.get('endpoint')} is limited from about {fmt(probe.get('estimated_limit_per_s'))} requests/s "
                f"(429s from an offered {fmt(probe.get('limited_from_rate'))}/s){tail}."
            )
            return _line("Rate limits", "warn" if missing or rl.get("retry_after_not_honoured") else "pass", text)
        top = max((x.get("offered_rate") or 0 for x in probe.get("steps") or []), default=0)
        return _line(
            "Rate limits", "fail", f"{probe.get('endpoint')} is not limited up to {fmt(top)} requests/s{tail}."
        )
    if met:
        return _line("Rate limits", "info", f"No probe ran; {', '.join(extra)}.")
    return _line("Rate limits", "skip", "No rate-limit probe ran and no player met a 429.")


def _c_reconnects(s: Mapping[str, Any]) -> dict[str, str]:
    rc = s.get("reconnect") or {}
    dropped, recovered = int(rc.get("dropped") or 0), int(rc.get("recovered") or 0)
    if not dropped:
        if rc.get("storms_failed"):
            return _line("Reconnects", "fail", f"{fmt(rc['storms_failed'])} storm(s) could not be set off.")
        return _line("Reconnects", "skip", "No storm was set off and no session dropped.")
    times = f"recovery p50 {fmt(rc.get('recovery_p50_s'))} s, p95 {fmt(rc.get('recovery_p95_s'))} s"
    storms = f" over {fmt(rc.get('storms'))} storm(s)" if rc.get("storms") else ""
    if recovered >= dropped:
        return _line("Reconnects", "pass", f"All {fmt(dropped)} dropped players came back{storms}: {times}.")
    gave_up = f", {fmt(rc['gave_up'])} gave up" if rc.get("gave_up") else ""
    return _line(
        "Reconnects",
        "warn",
        f"{fmt(recovered)} of {fmt(dropped)} dropped players came back{storms} "
        f"({fmt(round(100 * recovered / dropped, 1))} %{gave_up}): {times}.",
    )


def _c_http(s: Mapping[str, Any]) -> dict[str, str]:
    steps = s.get("http") or {}
    if not steps:
        return _line("HTTP steps", "skip", "No HTTP request was made.")
    count = sum(int(v.get("count") or 0) for v in steps.values())
    failures = sum(int(v.get("failures") or 0) for v in steps.values())
    p95 = ", ".join(f"{k} {fmt(v.get('p95_ms'))} ms" for k, v in sorted(steps.items()))
    if failures:
        return _line(
            "HTTP steps",
            "warn",
            f"{fmt(failures)} of {fmt(count)} requests over {len(steps)} step(s) failed; p95 {p95}.",
        )
    return _line("HTTP steps", "pass", f"{fmt(count)} requests over {len(steps)} step(s), none failed; p95 {p95}.")


def _c_generator(s: Mapping[str, Any]) -> dict[str, str]:
    gen = s.get("generator") or {}
    if not gen:
        return _line("Load generator", "skip", "The load generator recorded nothing about itself.")
    what = (
        f"{fmt(gen.get('workers'))} process(es), CPU max {fmt(gen.get('cpu_max_pct'))} % of a core, "
        f"event-loop lag p99 {fmt(gen.get('loop_lag_p99_ms'))} ms"
    )
    if gen.get("seconds_saturated"):
        return _line(
            "Load generator",
            "warn",
            f"Saturated for {fmt(gen['seconds_saturated'])} s ({what}); those seconds are not counted "
            "against the server.",
        )
    return _line("Load generator", "pass", f"Healthy: {what}.")


def _c_cors(s: Mapping[str, Any]) -> dict[str, str] | None:
    cors = s.get("cors")
    if not cors:
        return None
    found = cors.get("findings") or []
    if found:
        return _line("CORS", "fail", f"{len(found)} finding(s) over {fmt(cors.get('checked'))} checks.")
    return _line("CORS", "pass", f"All {fmt(cors.get('checked'))} origin checks answered as configured.")


def _redact(url: Any) -> str | None:
    """The target without any user:password@ a caller may have put in it."""
    if not url:
        return None
    parts = urlsplit(str(url))
    if parts.username is None and parts.password is None:
        return str(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _utc(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def _span(frames: dict[str, pd.DataFrame]) -> int:
    """Seconds from the run's first recorded second to its last, inclusive (0: no data)."""
    last = max((int(f.index.max()) for f in frames.values() if len(f)), default=None)
    return 0 if last is None else last + 1


def fmt(value: Any) -> str:
    """A number as a reader wants it: thousands separated, at most three decimals, "—" for none."""
    if value is None:
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            return "—"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        text = f"{value:,.3f}".rstrip("0").rstrip(".")
        return text if text not in ("0", "-0") else f"{value:.2g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) or "none"
    return str(value)


#: Words for summary keys a reader meets in the detail tables; others are spelled out by :func:`label`.
LABELS = {
    "nominal_hz": "nominal tick rate (Hz)",
    "threshold_hz": "degradation threshold (Hz)",
    "p50_hz": "tick rate p50 (Hz)",
    "p5_hz": "tick rate p5 (Hz)",
    "min_hz": "slowest tick rate (Hz)",
    "ticks_received": "ticks received",
    "missed_ticks": "ticks that never arrived",
    "out_of_order": "ticks out of order",
    "lag_p50_ms": "tick lag p50 (ms)",
    "lag_p99_ms": "tick lag p99 (ms)",
    "jitter_p99_ms": "tick jitter p99 (ms)",
    "input_rtt_p50_ms": "input round trip p50 (ms)",
    "input_rtt_p99_ms": "input round trip p99 (ms)",
    "degradation": "degradation onset",
    "seconds": "seconds with ticks",
    "peak_players": "peak players connected",
    "engine_errors": "WebSocket engine errors",
    "sessions_opened": "sessions opened",
    "connect_p50_ms": "connect p50 (ms)",
    "connect_p95_ms": "connect p95 (ms)",
    "connect_failed": "connects refused, by reason",
    "connect_failed_total": "connects refused",
    "ended": "sessions ended, by cause",
    "unexpected_disconnects": "sessions lost (not ended by the player)",
    "messages": "messages received",
    "responses_429": "429s players met, by step",
    "responses_429_total": "429s players met",
    "without_retry_after": "429s without Retry-After",
    "retry_after_p50_s": "Retry-After p50 (s)",
    "retry_after_honoured": "Retry-After honoured",
    "retry_after_not_honoured": "Retry-After not honoured",
    "retry_after_honoured_ratio": "Retry-After honoured (share)",
    "enforced": "limit enforced",
    "limited_from_rate": "429s from an offered rate of (req/s)",
    "estimated_limit_per_s": "estimated limit (req/s)",
    "dropped": "players dropped",
    "recovered": "players back in a game",
    "recovered_ratio": "share back in a game",
    "recovery_p50_s": "recovery p50 (s)",
    "recovery_p95_s": "recovery p95 (s)",
    "recovery_max_s": "slowest recovery (s)",
    "gave_up": "gave up reconnecting",
    "dropped_by_cause": "drops, by cause",
    "attempts": "attempts",
    "limited": "attempts that met a 429",
    "resumed": "resumed with a reconnection token",
    "resume_refused": "reconnection tokens refused",
    "storms": "storms set off",
    "storms_failed": "storms that could not be set off",
    "storm_dropped": "players dropped by storms",
    "rejected": "refused",
    "accepted": "accepted",
    "refused_ticket": "tickets refused, by reason",
    "refused_jwt": "tokens refused, by reason",
    "skipped": "attempts skipped, by reason",
    "workers": "worker processes",
    "cpu_max_pct": "CPU max (% of a core)",
    "cpu_mean_pct": "CPU mean (% of a core)",
    "loop_lag_p99_ms": "event-loop lag p99 (ms)",
    "seconds_saturated": "seconds saturated",
    "verdict": "verdict",
    "checked": "origins checked",
    "ok": "answered as configured",
}

_UNITS = {"ms": "ms", "hz": "Hz", "s": "s", "pct": "%", "per_s": "per s"}


def label(key: str) -> str:
    """A summary key in words: ``retry_after_p50_s`` -> "retry after p50 (s)"."""
    if key in LABELS:
        return LABELS[key]
    for suffix, unit in sorted(_UNITS.items(), key=lambda kv: -len(kv[0])):
        if key.endswith("_" + suffix):
            return f"{key[: -len(suffix) - 1].replace('_', ' ')} ({unit})"
    return key.replace("_", " ")


# -- tables ---------------------------------------------------------------------------------------


def _ms_of(hist: HdrHistogram | None, p: float) -> float | None:
    value = percentile(hist, p)
    return None if value is None else value / 1000


def _latency_row(name: str, count: int, failures: int, hist: HdrHistogram | None) -> dict[str, Any]:
    return {
        "name": name,
        "count": count,
        "failures_pct": None if count == 0 else round(100 * failures / count, 2),
        "min": _ms_of(hist, 0),
        "p50": _ms_of(hist, 50),
        "p75": _ms_of(hist, 75),
        "p95": _ms_of(hist, 95),
        "p99": _ms_of(hist, 99),
        "max": None if hist is None or not hist.get_total_count() else hist.get_max_value() / 1000,
    }


def _latency_tables(
    summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], totals: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Gatling-style rows from the run-wide merged histograms (summary p50/p95 are the same numbers)."""
    rows = []
    hf = frames["http"]
    counts = hf.groupby("endpoint")[["requests", "failures"]].sum() if len(hf) else pd.DataFrame()
    hists = totals[http.NAME]
    endpoints = sorted(set(counts.index) | {http.LATENCY.parse(n)[0] for n in hists})
    # Rows are per path, named by the step the summary gives that path: "join (/api/v2/match)".
    steps = {p: step for step, v in (summary.get("http") or {}).items() for p in str(v.get("path", "")).split(", ")}
    for endpoint in endpoints:
        requests = int(counts.at[endpoint, "requests"]) if endpoint in counts.index else 0
        failures = int(counts.at[endpoint, "failures"]) if endpoint in counts.index else 0
        step = steps.get(endpoint, endpoint)
        name = endpoint if step == endpoint else f"{step} ({endpoint})"
        rows.append(_latency_row(name, requests, failures, hists.get(http.LATENCY(endpoint))))
    sf = frames["sessions"]
    connect = totals[sessions.NAME].get(sessions.CONNECT())
    if len(sf) or connect is not None:
        failed = int(sf["connect_failed"].sum()) if len(sf) else 0
        opened = int(sf["opened"].sum()) if len(sf) else 0
        rows.append(_latency_row("WS connect", opened + failed, failed, connect))
    return rows


def _kv(source: Mapping[str, Any] | None, skip: Iterable[str] = ()) -> list[tuple[str, str]]:
    if not source:
        return []
    skip = set(skip)
    return [(label(k), fmt(v)) for k, v in source.items() if k not in skip]


def _sections(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Key numbers per concern, in words: a key/value table, then any row tables the concern has.

    ``raw`` sections are folded (``<details>``): a reader opens them to check, not to understand."""
    out = []
    tick = dict(summary.get("tick") or {})
    onset = tick.pop("degradation", None)
    tick["degradation"] = (
        "none"
        if not onset
        else f"from {_utc(onset.get('onset_second'))} at {fmt(onset.get('players'))} players "
        f"(p5 {fmt(onset.get('p5_hz'))} Hz)"
    )
    out.append({"title": "Tick rate", "kv": _kv(tick), "tables": [], "raw": False})
    out.append({"title": "WebSocket sessions", "kv": _kv(summary.get("ws")), "tables": [], "raw": False})

    rl = summary.get("rate_limit") or {}
    probe = rl.get("probe")
    tables = []
    if probe:
        cols = ["offered_rate", "sent", "accepted", "limited", "other", "accepted_rate"]
        words = ["offered (req/s)", "sent", "accepted", "429", "other", "accepted (req/s)"]
        tables.append(
            _table(f"Rate-limit probe steps on {probe.get('endpoint')}", cols, probe.get("steps") or [], words=words)
        )
    kv = _kv(rl, skip=("probe", "seat_hoarding", "enforced"))
    if probe:
        kv += [(f"probe: {k}", v) for k, v in _kv(probe, skip=("steps", "endpoint"))]
    out.append({"title": "Rate limits", "kv": kv, "tables": tables, "raw": False})

    rp = summary.get("replay") or {}
    kinds = [{"kind": k.replace("_", " "), **v} for k, v in (rp.get("by_kind") or {}).items()]
    tables = (
        [
            _table(
                "Verdicts by kind",
                ["kind", "attempts", "rejected", "accepted"],
                kinds,
                words=["kind", "attempts", "refused", "accepted"],
            )
        ]
        if kinds
        else []
    )
    out.append({"title": "Replay and forgery probes", "kv": _kv(rp, skip=("by_kind",)), "tables": tables, "raw": False})

    rc = dict(summary.get("reconnect") or {})
    by_storm = rc.pop("by_storm", None) or []
    tables = []
    if by_storm:
        rows = [{**b, "sides": ", ".join(b.get("sides") or [])} for b in by_storm]
        cols = ["at_s", "sides", "dropped", "recovered", "recovery_p50_s", "recovery_p95_s", "gave_up"]
        words = ["at (s)", "side", "dropped", "back in a game", "recovery p50 (s)", "recovery p95 (s)", "gave up"]
        tables.append(_table("Per storm", cols, rows, words=words))
    out.append({"title": "Reconnects", "kv": _kv(rc), "tables": tables, "raw": False})

    endpoints = summary.get("http") or {}
    rows = [{"step": k, **v} for k, v in endpoints.items()]
    cols = ["step", "path", "count", "failures", "p50_ms", "p95_ms", "p99_ms", "peak_per_s", "status"]
    words = [
        "step", "path", "requests", "failed", "p50 (ms)", "p95 (ms)", "p99 (ms)", "peak (req/s)", "responses by status"
    ]
    out.append(
        {
            "title": "HTTP steps",
            "kv": [],
            "tables": [_table("Per step", cols, rows, words=words)] if rows else [],
            "raw": False,
        }
    )

    cors = summary.get("cors")
    if cors:
        found = cors.get("findings") or []
        tables = [_table("Findings", ["finding", "origin", "path"], found)] if found else []
        out.append({"title": "CORS", "kv": _kv(cors, skip=("findings",)), "tables": tables, "raw": False})

    gen = dict(summary.get("generator") or {})
    per_worker = gen.pop("per_worker", None) or {}
    tables = []
    if per_worker:
        rows = [{"worker": w, **v} for w, v in per_worker.items()]
        cols = ["worker", "seconds", "cpu_mean_pct", "cpu_max_pct", "loop_lag_p99_ms", "seconds_saturated"]
        words = ["worker", "seconds", "CPU mean (%)", "CPU max (%)", "loop lag p99 (ms)", "seconds saturated"]
        tables.append(_table("Per worker process", cols, rows, words=words))
    out.append({"title": "Load generator", "kv": _kv(gen), "tables": tables, "raw": False})

    out.append({"title": "Protocol errors", "kv": _kv(summary.get("protocol_errors")), "tables": [], "raw": True})
    integrity = dict(summary.get("integrity") or {})
    tables = []
    for key, cols in (
        ("storms", ["at_s", "side", "carried_out", "dropped", "why"]),
        ("probes", ["probe", "checked", "attempts", "why"]),
        ("stages", ["stage", "users", "peak_connected"]),
        ("workers_lost", ["worker", "last_seen_s", "sessions"]),
    ):
        rows = integrity.pop(key, None) or []
        if rows:
            tables.append(_table(label(key).capitalize(), cols, rows, words=[label(c) for c in cols]))
    out.append(
        {"title": "Run integrity: plan against what happened", "kv": _kv(integrity), "tables": tables, "raw": True}
    )
    return out


def _target_metrics(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The target's own counters that moved, grouped by family (name before the labels)."""
    tm = summary.get("target_metrics")
    if not tm:
        return None
    families: dict[str, list[tuple[str, Any]]] = {}
    unchanged = 0
    for name, delta in sorted((tm.get("delta") or {}).items()):
        if not delta:
            unchanged += 1
            continue
        family, _, labels = name.partition("{")
        families.setdefault(family, []).append((labels.rstrip("}") or "(no labels)", delta))
    shown, note = 0, ""
    groups = []
    for family, rows in families.items():
        if shown >= MAX_TARGET_ROWS:
            note = f"{sum(len(r) for r in families.values()) - shown} more in summary.json. "
            break
        rows = rows[: MAX_TARGET_ROWS - shown]
        shown += len(rows)
        groups.append({"family": family, "rows": [(lbl, fmt(v)) for lbl, v in rows]})
    gauge = tm.get("tick_gauge") or []
    return {
        "scraped": bool(tm.get("scraped")),
        "scrapes": tm.get("scrapes"),
        "failed": tm.get("failed_scrapes") or 0,
        "errors": [str(e) for e in tm.get("errors") or []],
        "groups": groups,
        "unchanged": unchanged,
        "note": note,
        "gauge": f"{len(gauge)} scrape(s) read the target's tick-rate gauge" if gauge else "",
    }


def _table(
    title: str,
    columns: list[str],
    rows: Iterable[Mapping[str, Any]],
    note: str = "",
    words: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "title": title,
        "columns": words or [label(c) for c in columns],
        "rows": [[fmt(r.get(c)) for c in columns] for r in rows],
        "note": note,
    }


# -- charts ---------------------------------------------------------------------------------------


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(size: tuple[float, float] = WIDE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _legend(fig: Figure, *axes: Axes, ncol: int = 4) -> None:
    """One legend for all axes (a twin's lines too), under the plot where it hides no data."""
    handles, labels = [], []
    for ax in axes:
        h, label = ax.get_legend_handles_labels()
        handles += h
        labels += label
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(ncol, len(handles)), fontsize="small")


class _Axis:
    """Run time in seconds, or minutes once a run is long enough that seconds are hard to read."""

    def __init__(self, span: int) -> None:
        self.scale, self.label = (60.0, "run time (min)") if span > 900 else (1.0, "run time (s)")

    def x(self, index: Iterable[float]) -> np.ndarray:
        return np.asarray(list(index), dtype=float) / self.scale


def _per_second(frame: pd.DataFrame, column: str, span: int) -> pd.Series:
    """A long frame's column summed per second, with 0 for the seconds it has no row for."""
    full = pd.RangeIndex(span, name=series.INDEX)
    if not len(frame):
        return pd.Series(0, index=full, dtype="int64")
    return frame.groupby(level=0)[column].sum().reindex(full, fill_value=0)


def _runs(index: pd.Index, flags: pd.Series) -> list[tuple[int, int]]:
    """Contiguous runs of flagged seconds, as (first, last) pairs, for shading."""
    out: list[tuple[int, int]] = []
    for t in index[flags.to_numpy(dtype=bool)]:
        if out and t == out[-1][1] + 1:
            out[-1] = (out[-1][0], int(t))
        else:
            out.append((int(t), int(t)))
    return out


def _charts(
    summary: Mapping[str, Any],
    frames: dict[str, pd.DataFrame],
    totals: dict[str, dict[str, Any]],
    t0: int | None,
    span: int,
) -> list[Chart]:
    axis = _Axis(span)
    makers: list[Callable[[], Chart | None]] = [
        lambda: _chart_load(summary, frames, axis, span),
        lambda: _chart_latency(frames, axis, span),
        lambda: _chart_status(frames, axis, span),
        lambda: _chart_tick_rate(summary, frames, axis, t0, span),
        lambda: _chart_server_vs_client(summary, frames, axis, t0, span),
        lambda: _chart_tick_vs_players(summary, frames, t0),
        lambda: _chart_storms(frames, axis, span),
        lambda: _chart_recovery(summary, totals),
        lambda: _chart_replay(summary),
        lambda: _chart_probe(summary),
    ]
    return [chart for make in makers if (chart := make()) is not None]


def _gapped(series_: pd.Series, span: int) -> pd.Series:
    """A per-second series on every second of the run, NaN where it has no value: a line drawn from
    it breaks there instead of joining two seconds across a silence."""
    return series_.reindex(pd.RangeIndex(span, name=series.INDEX))


def _players(frames: dict[str, pd.DataFrame], span: int) -> tuple[pd.Series, str]:
    """Players connected each second (0 in a second without ticks) and where the number comes from."""
    tf, gf = frames["ticks"], frames["generator"]
    players, source = (tf["players"], "ticking sessions") if len(tf) else (gf["sessions"], "open sessions")
    full = pd.RangeIndex(span, name=series.INDEX)
    return players.groupby(level=0).sum().reindex(full, fill_value=0) if len(players) else players, source


def _draw_players(ax: Axes, axis: _Axis, players: pd.Series, **style: Any) -> None:
    ax.plot(axis.x(players.index), players.to_numpy(), drawstyle="steps-post", **style)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _planned_users(summary: Mapping[str, Any]) -> int | None:
    ig = summary.get("integrity") or {}
    stages = ig.get("stages") or []
    if stages:
        return max(int(st.get("users") or 0) for st in stages) or None
    planned = ig.get("planned_users")
    if planned is None:
        planned = (summary.get("scenario") or {}).get("users")
    return int(planned) if isinstance(planned, int | float) else None


def _chart_load(summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], axis: _Axis, span: int) -> Chart | None:
    players, source = _players(frames, span)
    sf = frames["sessions"]
    if not len(players) and not len(sf):
        return None
    fig, ax = _figure()
    planned = _planned_users(summary)
    axes = [ax]
    if len(sf):
        # Sessions begun each second, behind the players line: a dip that lines up with a bar is
        # turnover (sessions ending and players joining again), not players lost.
        ax2 = ax.twinx()
        opened = _per_second(sf, "opened", span)
        ax2.bar(
            axis.x(opened.index),
            opened.to_numpy(),
            width=1 / axis.scale,
            align="edge",
            color="#b0b0b0",
            alpha=0.6,
            label="sessions begun/s",
        )
        ax2.set_ylabel("sessions begun/s")
        ax2.set_ylim(0, max(1.0, float(opened.max())) * 3)  # bars in the lower third, under the line
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        axes.append(ax2)
    if len(players):
        _draw_players(ax, axis, players, color="#1f77b4", lw=1.4, label="players connected")
    if planned:
        ax.axhline(planned, color=COLOURS["nominal"], ls="--", lw=1, label=f"planned users {planned}")
        ax.set_ylim(0, max(planned, int(players.max()) if len(players) else 0) * 1.15)
    ax.set_xlim(0, span / axis.scale)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("players")
    _legend(fig, *axes)
    peak = int(players.max()) if len(players) else 0
    caption = (
        f"Players connected each second ({source}, summed over load generators; peak {fmt(peak)}) against the "
        "users planned, with the sessions begun each second in grey."
    )
    good = (
        "the blue line reaches the dashed planned line and stays there; short dips that line up with grey bars "
        "are sessions ending and players joining again, not players lost."
    )
    return Chart("Load", caption, _png(fig), good)


def _chart_latency(frames: dict[str, pd.DataFrame], axis: _Axis, span: int) -> Chart | None:
    hf = frames["http"]
    if not len(hf) or hf["p50_ms"].isna().all():
        return None
    busiest = hf.groupby("endpoint")["requests"].sum().sort_values(ascending=False)
    shown = list(busiest.index[:MAX_ENDPOINTS_DRAWN])
    # Over an hour, 3,600 per-second points are a solid band: draw the median of each few seconds.
    window = max(1, span // SMOOTH_POINTS)
    fig, ax = _figure()
    for i, endpoint in enumerate(shown):
        rows = hf.loc[hf["endpoint"] == endpoint, ["p50_ms", "p95_ms"]].groupby(level=0).max()
        rows = rows.reindex(pd.RangeIndex(span, name=series.INDEX))  # NaN: no request that second
        if window > 1:
            rows = rows.groupby(rows.index // window * window + window // 2).median()
        x, colour = axis.x(rows.index), f"C{i}"
        p50, p95 = rows["p50_ms"].to_numpy(dtype=float), rows["p95_ms"].to_numpy(dtype=float)
        ax.plot(x, p50, color=colour, lw=1, marker=".", ms=3, label=f"{endpoint} p50")
        ax.plot(x, p95, color=colour, lw=1, ls="--", label=f"{endpoint} p95")
    values = hf[["p50_ms", "p95_ms"]].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) and values.max() / values.min() > 100:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlim(0, span / axis.scale)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("response time (ms)")
    _legend(fig, ax)
    more = f" (the {MAX_ENDPOINTS_DRAWN} busiest of {len(busiest)})" if len(busiest) > len(shown) else ""
    smoothed = (
        f", drawn as the median of each {window} seconds (the CSV has every second); windows without a request are gaps"
        if window > 1
        else "; a second without a request to an endpoint is a gap in its line"
    )
    caption = (
        f"HTTP response time per endpoint{more}: p50 solid with dots, p95 dashed, from each second's histogram"
        f"{smoothed}. The run-wide percentiles are in the table below."
    )
    good = "flat lines low on the axis; p95 close to p50, and no climb as players join or a storm reconnects them."
    return Chart("Response times", caption, _png(fig), good)


def _chart_status(frames: dict[str, pd.DataFrame], axis: _Axis, span: int) -> Chart | None:
    hf = frames["http"]
    if not len(hf):
        return None
    fig, ax = _figure()
    present = [c for c in STATUS_COLOURS if hf[c].sum() > 0]
    per = {c: _per_second(hf, c, span) for c in present}
    x = axis.x(range(span))
    if present:
        ax.stackplot(
            x,
            *[per[c].to_numpy() for c in present],
            labels=[STATUS_COLOURS[c][0] for c in present],
            colors=[STATUS_COLOURS[c][1] for c in present],
            alpha=0.9,
            step="post",
        )
    if "status_429" in per:
        # Its edge drawn as a line too, so a thin band of 429s under a tall 2xx area is still seen.
        ax.plot(x, per["status_429"].to_numpy(), color="#8b0000", lw=1.2, drawstyle="steps-post")
    ax.set_xlim(0, span / axis.scale)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("responses/s")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, ax, ncol=6)
    n429 = int(hf["status_429"].sum())
    caption = (
        f"HTTP responses per second by status, stacked; 429 (rate limited) in red at the bottom: "
        f'{fmt(n429)} in all. "No response" is a request that failed before any status arrived.'
    )
    good = "all green (2xx); red only where a storm or the rate-limit probe was meant to meet the limit."
    return Chart("Status codes", caption, _png(fig), good)


def _tick_refs(summary: Mapping[str, Any]) -> tuple[float | None, float | None, dict[str, Any] | None]:
    tick = summary.get("tick") or {}
    return tick.get("nominal_hz"), tick.get("threshold_hz"), tick.get("degradation")


def _reference_lines(ax: Axes, nominal: float | None, threshold: float | None) -> None:
    """The nominal rate and the degradation threshold, the same way in every tick-rate chart."""
    if nominal:
        ax.axhline(nominal, color=COLOURS["nominal"], ls="--", lw=1, label=f"nominal {fmt(nominal)} Hz")
    if threshold:
        ax.axhline(threshold, color=COLOURS["threshold"], ls=":", lw=1.2, label=f"threshold {fmt(threshold)} Hz")


def _tick_axis(ax: Axes, values: Iterable[float], nominal: float | None, threshold: float | None) -> None:
    """A y-axis that frames the nominal rate and the threshold (and anything the data reached
    beyond them), so the band between them is most of the chart, not a sliver above 0."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    refs = [r for r in (nominal, threshold) if r]
    low = min([*refs, *(data.min(),) * bool(len(data))], default=0.0)
    high = max([*refs, *(data.max(),) * bool(len(data))], default=1.0)
    pad = max(1.0, 0.15 * (high - low))
    ax.set_ylim(max(0.0, low - pad), high + pad)


def _onset_x(onset: Mapping[str, Any] | None, t0: int | None) -> float | None:
    if not onset or t0 is None or onset.get("onset_second") is None:
        return None
    return float(onset["onset_second"] - t0)


def _chart_tick_rate(
    summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], axis: _Axis, t0: int | None, span: int
) -> Chart | None:
    tf = frames["ticks"]
    if not len(tf) or tf["p50_hz"].isna().all():
        return None
    nominal, threshold, onset = _tick_refs(summary)
    fig, ax = _figure()
    x = axis.x(range(span))
    lines = {c: _gapped(tf[c], span).to_numpy(dtype=float) for c in ("p50_hz", "p5_hz", "min_hz")}
    ax.plot(x, lines["p50_hz"], color=COLOURS["p50"], lw=1.4, label="p50")
    ax.plot(x, lines["p5_hz"], color=COLOURS["p5"], lw=1.2, ls="-.", label="p5")
    ax.plot(x, lines["min_hz"], color=COLOURS["min"], lw=0.8, ls=":", alpha=0.9, label="slowest session")
    _reference_lines(ax, nominal, threshold)
    for i, (first, last) in enumerate(_runs(tf.index, tf["saturated"])):
        ax.axvspan(
            first / axis.scale,
            (last + 1) / axis.scale,
            color=COLOURS["saturated"],
            alpha=0.35,
            lw=0,
            label="generator saturated" if i == 0 else None,
        )
    at = _onset_x(onset, t0)
    if at is not None:
        ax.axvline(at / axis.scale, color=COLOURS["threshold"], lw=1.5, label="degradation onset")
        ax.annotate(
            f"onset: {fmt(onset.get('players'))} players",  # type: ignore[union-attr]
            xy=(at / axis.scale, threshold or 0),
            xytext=(4, 4),
            textcoords="offset points",
            color=COLOURS["threshold"],
            fontsize="small",
        )
    _tick_axis(ax, np.concatenate(list(lines.values())), nominal, threshold)
    ax.set_xlim(0, span / axis.scale)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("tick rate players saw (Hz)")
    _legend(fig, ax, ncol=4)
    saturated = int(tf["saturated"].sum())
    caption = (
        "Tick rate the players measured each second (from the server's tick numbers and timestamps): "
        "median, 5th percentile and slowest session"
        + (f", against the nominal {fmt(nominal)} Hz and the {fmt(threshold)} Hz threshold" if threshold else "")
        + (f"; a red line marks the degradation onset at t={fmt(at)} s" if at is not None else "")
        + (
            f". {saturated} second(s) shaded: the load generator was saturated, so they are not counted."
            if saturated
            else ". A second without a ticking session is a gap."
        )
    )
    good = "all three lines on the nominal line, the dash-dotted p5 well above the red threshold, and no onset line."
    return Chart("Tick rate over time", caption, _png(fig), good)


def _chart_server_vs_client(
    summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], axis: _Axis, t0: int | None, span: int
) -> Chart | None:
    """The target's own tick gauge, scraped, beside the rate the players measured."""
    gauge = (summary.get("target_metrics") or {}).get("tick_gauge") or []
    started = (summary.get("run") or {}).get("started")
    tf = frames["ticks"]
    if not gauge or not len(tf) or t0 is None or not isinstance(started, int | float):
        return None
    from loadtest.results.findings import server_client_gap

    nominal, threshold, _ = _tick_refs(summary)
    fig, ax = _figure()
    x = axis.x(range(span))
    p50 = _gapped(tf["p50_hz"], span).to_numpy(dtype=float)
    ax.plot(x, p50, color=COLOURS["p50"], lw=1.4, label="players measured (p50)")
    gx = np.asarray([started + p["at_s"] - t0 for p in gauge], dtype=float) / axis.scale
    gy = np.asarray([p["hz"] for p in gauge], dtype=float)
    ax.plot(gx, gy, color="#111111", ls="none", marker="D", ms=6, label="server's own gauge (at each scrape)")
    _reference_lines(ax, nominal, threshold)
    _tick_axis(ax, [*p50, *gy], nominal, threshold)
    ax.set_xlim(0, span / axis.scale)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("tick rate (Hz)")
    _legend(fig, ax, ncol=4)
    gap = server_client_gap(dict(summary))
    verdict = (
        f" They disagree: the server says {gap[0]:.1f} Hz, the players measured {gap[1]:.1f} Hz (a finding)."
        if gap
        else " They agree."
    )
    caption = (
        f"Server against client: the target's tick-rate gauge read at each of its {len(gauge)} scrape(s) "
        "with a room running (diamonds) beside the median rate the players measured each second." + verdict
    )
    good = "the diamonds sit on the blue line; a server that reports 60 Hz while players get less hides the problem."
    return Chart("Server against client tick rate", caption, _png(fig), good)


def _chart_tick_vs_players(summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], t0: int | None) -> Chart | None:
    tf = frames["ticks"]
    if not len(tf) or tf["p5_hz"].isna().all():
        return None
    nominal, threshold, onset = _tick_refs(summary)
    fig, ax = _figure((6.5, 3.6))
    sat = tf["saturated"].to_numpy(dtype=bool)
    ok = tf[~sat]
    ax.scatter(ok["players"], ok["p5_hz"], s=9, color=COLOURS["p5"], alpha=0.6, label="p5 per second")
    if sat.any():
        bad = tf[sat]
        ax.scatter(bad["players"], bad["p5_hz"], s=12, marker="x", color="#999999", label="generator saturated")
    _reference_lines(ax, nominal, threshold)
    text = "No degradation onset: p5 never stayed under the threshold."
    if onset:
        ax.scatter(
            [onset.get("players")],
            [onset.get("p5_hz")],
            s=90,
            facecolors="none",
            edgecolors=COLOURS["threshold"],
            linewidths=2,
            zorder=5,
            label="degradation onset",
        )
        at = _onset_x(onset, t0)
        when = "" if at is None else f" at t={fmt(at)} s"
        text = (
            f"Degradation onset{when}: {fmt(onset.get('players'))} players, p5 {fmt(onset.get('p5_hz'))} Hz "
            "(the first of the seconds in a row under the threshold)."
        )
    _tick_axis(ax, tf["p5_hz"].to_numpy(dtype=float), nominal, threshold)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("players connected")
    ax.set_ylabel("p5 tick rate (Hz)")
    _legend(fig, ax, ncol=3)
    caption = "5th-percentile tick rate of each second against the players connected in it. " + text
    good = "the dots stay on the nominal line at every player count; where they bend down is the capacity."
    return Chart("Tick rate against players", caption, _png(fig), good)


def _chart_storms(frames: dict[str, pd.DataFrame], axis: _Axis, span: int) -> Chart | None:
    rf = frames["reconnect"]
    if not len(rf) or not rf[["dropped", "attempts", "storms"]].to_numpy().any():
        return None
    fig, ax = _figure()
    x = axis.x(range(span))
    dropped = _per_second(rf, "dropped", span)
    attempts = _per_second(rf, "attempts", span)
    rl = frames["rate_limit"]
    limited = _per_second(rl, "responses_429", span) if len(rl) else _per_second(frames["http"], "status_429", span)
    ax.plot(x, dropped.to_numpy(), color="#7b2d26", lw=1.2, drawstyle="steps-post", label="sessions dropped/s")
    ax.plot(x, attempts.to_numpy(), color="#1f77b4", lw=1, drawstyle="steps-post", label="reconnect attempts/s")
    ax.plot(x, limited.to_numpy(), color=COLOURS["429"], lw=1, ls="--", drawstyle="steps-post", label="429s/s")
    for t in rf.index[rf["storms"].to_numpy() > 0]:
        ax.axvline(t / axis.scale, color="#555555", lw=0.8, ls=":")
    ax.set_xlabel(axis.label)
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    axes = [ax]
    players, _ = _players(frames, span)
    if len(players):
        ax2 = ax.twinx()
        _draw_players(ax2, axis, players, color="#2ca02c", lw=1, alpha=0.8, label="players connected")
        ax2.set_ylabel("players connected")
        axes.append(ax2)
    _legend(fig, *axes)
    storms = int(rf["storms"].sum())
    caption = (
        f"Reconnect storms ({storms} set off, dotted lines): sessions dropped, reconnect attempts and 429 "
        "responses per second, with the players connected."
    )
    good = "after each dotted line the green players line climbs back to where it was within seconds, with few 429s."
    return Chart("Reconnect storm timeline", caption, _png(fig), good)


def _chart_recovery(summary: Mapping[str, Any], totals: dict[str, dict[str, Any]]) -> Chart | None:
    hist = totals[reconnects.NAME].get(reconnects.RECOVERY())
    if hist is None or not hist.get_total_count():
        return None
    values, counts = [], []
    for item in hist.get_recorded_iterator():
        values.append(item.value_iterated_to / 1000)
        counts.append(item.count_at_value_iterated_to)
    fig, ax = _figure((6.5, 3.2))
    bins = min(40, max(5, len(values)))
    ax.hist(values, bins=bins, weights=counts, color="#1f77b4", alpha=0.85)
    rc = summary.get("reconnect") or {}
    for key, ls in (("recovery_p50_s", "-"), ("recovery_p95_s", "--")):
        if rc.get(key) is not None:
            ax.axvline(rc[key], color=COLOURS["threshold"], ls=ls, lw=1, label=f"{key[9:12]} {fmt(rc[key])} s")
    ax.set_xlabel("recovery time (s): drop to first tick of the new session")
    ax.set_ylabel("recoveries")
    _legend(fig, ax)
    caption = (
        f"Distribution of the {fmt(hist.get_total_count())} recoveries' times (run-wide histogram; "
        f"sessions that gave up, {fmt(rc.get('gave_up'))}, are not in it)."
    )
    good = "one narrow hump at a few seconds or less, no long tail, and no player who gave up."
    return Chart("Recovery time", caption, _png(fig), good)


def _chart_replay(summary: Mapping[str, Any]) -> Chart | None:
    by_kind = (summary.get("replay") or {}).get("by_kind") or {}
    if not by_kind:
        return None
    kinds = sorted(by_kind)
    rejected = [by_kind[k].get("rejected", 0) for k in kinds]
    accepted = [by_kind[k].get("accepted", 0) for k in kinds]
    fig, ax = _figure((7.5, 0.45 * len(kinds) + 1.2))
    y = np.arange(len(kinds))
    ax.barh(y, rejected, color=COLOURS["ok"], label="rejected (correct)")
    ax.barh(y, accepted, left=rejected, color=COLOURS["bad"], label="accepted (vulnerable)")
    ax.set_yticks(y, kinds)
    ax.invert_yaxis()
    ax.set_xlabel("attempts")
    _legend(fig, ax)
    bad = [k for k, a in zip(kinds, accepted, strict=True) if a]
    caption = "Replay and forgery attempts by kind and the server's verdict. " + (
        f"Accepted (a finding): {', '.join(bad)}." if bad else "Every attempt was rejected."
    )
    good = "every bar all green: each replayed, expired or forged credential was refused."
    return Chart("Replay verdicts", caption, _png(fig), good)


def _probe_steps(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    probe = (summary.get("rate_limit") or {}).get("probe") or {}
    return list(probe.get("steps") or [])


def _chart_probe(summary: Mapping[str, Any]) -> Chart | None:
    # A step the run's end cut short has no rate to draw.
    steps = [s for s in _probe_steps(summary) if s.get("accepted_rate") is not None]
    if not steps:
        return None
    probe = summary["rate_limit"]["probe"]
    offered = [s["offered_rate"] for s in steps]
    accepted = [s["accepted_rate"] for s in steps]
    fig, ax = _figure((6.5, 3.4))
    top = max(offered + accepted) * 1.1 or 1.0
    ax.plot([0, top], [0, top], color="#999999", ls=":", lw=1, label="all accepted")
    ax.plot(offered, accepted, marker="o", color="#1f77b4", label="accepted rate")
    limited = [s for s in steps if s.get("limited")]
    if limited:
        ax.scatter(
            [s["offered_rate"] for s in limited],
            [s["accepted_rate"] for s in limited],
            color=COLOURS["429"],
            zorder=5,
            label="steps with 429s",
        )
    limit = probe.get("estimated_limit_per_s")
    if limit is not None:
        ax.axhline(limit, color=COLOURS["threshold"], ls="--", lw=1, label=f"estimated limit {fmt(limit)}/s")
    ax.set_xlabel(f"offered rate to {probe.get('endpoint')} (requests/s)")
    ax.set_ylabel("accepted (requests/s)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    _legend(fig, ax, ncol=2)
    caption = (
        "Rate-limit probe: each step offers a fixed request rate; the accepted rate flattens where the limit is. "
        + (
            f"429s from {fmt(probe.get('limited_from_rate'))} requests/s."
            if probe.get("enforced")
            else "No step was limited: no rate limit was found."
        )
    )
    good = "the blue line leaves the dotted diagonal and flattens at the limit you configured; red 429s beyond it."
    return Chart("Rate-limit probe", caption, _png(fig), good)


__all__ = ["REPORT", "build_report", "fmt"]
