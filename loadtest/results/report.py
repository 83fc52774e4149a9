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
WIDE = (9.0, 3.2)
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
            "message": g.get("message") or "",
        }
        for g in summary.get("gates") or []
    ]
    return {
        "header": header,
        "has_data": t0 is not None,
        "gates": gates,
        "findings": [str(f) for f in summary.get("findings") or []],
        "charts": _charts(summary, frames, totals, t0, span),
        "latency_tables": _latency_tables(summary, frames, totals),
        "sections": _sections(summary),
    }


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
        "outcome": summary.get("outcome") or ("passed" if passed else "failed"),
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
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) or "—"
    return str(value)


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
    return [(k, fmt(v)) for k, v in source.items() if k not in skip]


def _sections(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Key numbers per concern: a key/value table, then any row tables the concern has."""
    out = []
    tick = dict(summary.get("tick") or {})
    onset = tick.pop("degradation", None)
    tick["degradation"] = (
        "none"
        if not onset
        else f"from {_utc(onset.get('onset_second'))} at {fmt(onset.get('players'))} players "
        f"(p5 {fmt(onset.get('p5_hz'))} Hz)"
    )
    out.append({"title": "Tick rate", "kv": _kv(tick), "tables": []})
    out.append({"title": "WebSocket sessions", "kv": _kv(summary.get("ws")), "tables": []})
    out.append({"title": "Protocol errors", "kv": _kv(summary.get("protocol_errors")), "tables": []})

    rl = summary.get("rate_limit") or {}
    probe = rl.get("probe")
    tables = []
    if probe:
        cols = ["endpoint", "offered_rate", "sent", "accepted", "limited", "other", "accepted_rate"]
        tables.append(_table("Rate-limit probe steps", cols, probe.get("steps") or []))
    kv = _kv(rl, skip=("probe",))
    if probe:
        kv += [(f"probe.{k}", v) for k, v in _kv(probe, skip=("steps",))]
    out.append({"title": "Rate limits", "kv": kv, "tables": tables})

    rp = summary.get("replay") or {}
    kinds = [{"kind": k, **v} for k, v in (rp.get("by_kind") or {}).items()]
    tables = [_table("Verdicts by kind", ["kind", "attempts", "rejected", "accepted"], kinds)] if kinds else []
    out.append({"title": "Replay and forgery probes", "kv": _kv(rp, skip=("by_kind",)), "tables": tables})

    out.append({"title": "Reconnects", "kv": _kv(summary.get("reconnect")), "tables": []})

    endpoints = summary.get("http") or {}
    rows = [{"step": k, **v} for k, v in endpoints.items()]
    cols = ["step", "path", "count", "failures", "p50_ms", "p95_ms", "p99_ms", "peak_per_s", "status"]
    out.append({"title": "HTTP", "kv": [], "tables": [_table("Per step", cols, rows)] if rows else []})

    cors = summary.get("cors")
    if cors:
        found = cors.get("findings") or []
        tables = [_table("Findings", ["finding", "origin", "path"], found)] if found else []
        out.append({"title": "CORS", "kv": _kv(cors, skip=("findings",)), "tables": tables})

    out.append({"title": "Load generator", "kv": _kv(summary.get("generator")), "tables": []})

    tm = summary.get("target_metrics")
    if tm:
        kv = [("scraped", fmt(tm.get("scraped"))), ("scrapes", fmt(tm.get("scrapes")))]
        if tm.get("errors"):
            kv.append(("errors", fmt(tm.get("errors"))))
        delta = sorted((tm.get("delta") or {}).items())
        note = ""
        if len(delta) > MAX_TARGET_ROWS:
            note = f"{len(delta) - MAX_TARGET_ROWS} more in summary.json"
            delta = delta[:MAX_TARGET_ROWS]
        rows = [{"counter": k, "delta": v} for k, v in delta]
        tables = [_table("Counter increase over the run", ["counter", "delta"], rows, note)] if rows else []
        out.append({"title": "Target's own metrics", "kv": kv, "tables": tables})
    return out


def _table(title: str, columns: list[str], rows: Iterable[Mapping[str, Any]], note: str = "") -> dict[str, Any]:
    return {"title": title, "columns": columns, "rows": [[fmt(r.get(c)) for c in columns] for r in rows], "note": note}


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
        lambda: _chart_load(frames, axis, span),
        lambda: _chart_latency(frames, axis, span),
        lambda: _chart_status(frames, axis, span),
        lambda: _chart_tick_rate(summary, frames, axis, t0),
        lambda: _chart_tick_vs_players(summary, frames, t0),
        lambda: _chart_storms(frames, axis, span),
        lambda: _chart_recovery(summary, totals),
        lambda: _chart_replay(summary),
        lambda: _chart_probe(summary),
    ]
    return [chart for make in makers if (chart := make()) is not None]


def _chart_load(frames: dict[str, pd.DataFrame], axis: _Axis, span: int) -> Chart | None:
    tf, gf, hf = frames["ticks"], frames["generator"], frames["http"]
    players, source = (tf["players"], "ticking sessions") if len(tf) else (gf["sessions"], "open sessions")
    if not len(players) and not len(hf):
        return None
    fig, ax = _figure()
    if len(players):
        ax.plot(axis.x(players.index), players.to_numpy(), color="#1f77b4", label="players connected")
    ax.set_xlabel(axis.label)
    ax.set_ylabel("players")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    rps = _per_second(hf, "requests", span)
    axes = [ax]
    if len(hf):
        ax2 = ax.twinx()
        ax2.plot(axis.x(rps.index), rps.to_numpy(), color="#ff7f0e", lw=0.9, label="HTTP requests/s")
        ax2.set_ylabel("requests/s")
        ax2.set_ylim(bottom=0)
        axes.append(ax2)
    _legend(fig, *axes)
    caption = (
        f"Players connected each second ({source}, summed over load generators) and HTTP requests "
        f"per second over all endpoints; peak {fmt(int(rps.max()) if len(rps) else 0)} requests/s."
    )
    return Chart("Load", caption, _png(fig))


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
        rows = hf.loc[hf["endpoint"] == endpoint, ["p50_ms", "p95_ms"]]
        if window > 1:
            rows = rows.groupby(rows.index // window * window + window // 2).median()
        x, colour = axis.x(rows.index), f"C{i}"
        ax.plot(x, rows["p50_ms"].to_numpy(), color=colour, lw=1, label=f"{endpoint} p50")
        ax.plot(x, rows["p95_ms"].to_numpy(), color=colour, lw=1, ls="--", label=f"{endpoint} p95")
    values = hf[["p50_ms", "p95_ms"]].to_numpy(dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) and values.max() / values.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel(axis.label)
    ax.set_ylabel("response time (ms)")
    _legend(fig, ax)
    more = f" (the {MAX_ENDPOINTS_DRAWN} busiest of {len(busiest)})" if len(busiest) > len(shown) else ""
    smoothed = (
        f", drawn as the median of each {window} seconds (the CSV has every second)"
        if window > 1
        else "; seconds without a request to an endpoint have no point"
    )
    caption = (
        f"HTTP response time per endpoint{more}: p50 solid, p95 dashed, from each second's histogram"
        f"{smoothed}. The run-wide percentiles are in the table below."
    )
    return Chart("Response times", caption, _png(fig))


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
        )
    if "status_429" in per:
        # Its edge drawn as a line too, so a thin band of 429s under a tall 2xx area is still seen.
        ax.plot(x, per["status_429"].to_numpy(), color="#8b0000", lw=1.2)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("responses/s")
    ax.set_ylim(bottom=0)
    _legend(fig, ax, ncol=6)
    n429 = int(hf["status_429"].sum())
    caption = (
        f"HTTP responses per second by status, stacked; 429 (rate limited) in red at the bottom: "
        f'{fmt(n429)} in all. "No response" is a request that failed before any status arrived.'
    )
    return Chart("Status codes", caption, _png(fig))


def _tick_refs(summary: Mapping[str, Any]) -> tuple[float | None, float | None, dict[str, Any] | None]:
    tick = summary.get("tick") or {}
    return tick.get("nominal_hz"), tick.get("threshold_hz"), tick.get("degradation")


def _chart_tick_rate(
    summary: Mapping[str, Any], frames: dict[str, pd.DataFrame], axis: _Axis, t0: int | None
) -> Chart | None:
    tf = frames["ticks"]
    if not len(tf) or tf["p50_hz"].isna().all():
        return None
    nominal, threshold, onset = _tick_refs(summary)
    fig, ax = _figure()
    x = axis.x(tf.index)
    ax.plot(x, tf["p50_hz"].to_numpy(), color=COLOURS["p50"], lw=1.2, label="p50")
    ax.plot(x, tf["p5_hz"].to_numpy(), color=COLOURS["p5"], lw=1.2, label="p5")
    ax.plot(x, tf["min_hz"].to_numpy(), color=COLOURS["min"], lw=0.8, alpha=0.7, label="min")
    if nominal:
        ax.axhline(nominal, color=COLOURS["nominal"], ls="--", lw=1, label=f"nominal {fmt(nominal)} Hz")
    if threshold:
        ax.axhline(threshold, color=COLOURS["threshold"], ls=":", lw=1.2, label=f"threshold {fmt(threshold)} Hz")
    runs = _runs(tf.index, tf["saturated"])
    for i, (first, last) in enumerate(runs):
        ax.axvspan(
            first / axis.scale,
            (last + 1) / axis.scale,
            color=COLOURS["saturated"],
            alpha=0.35,
            lw=0,
            label="generator saturated" if i == 0 else None,
        )
    if onset and t0 is not None and onset.get("onset_second") is not None:
        ax.axvline((onset["onset_second"] - t0) / axis.scale, color=COLOURS["threshold"], lw=1, label="degradation")
    ax.set_xlabel(axis.label)
    ax.set_ylabel("server tick rate (Hz)")
    ax.set_ylim(bottom=0)
    _legend(fig, ax, ncol=4)
    saturated = int(tf["saturated"].sum())
    caption = (
        "Server tick rate across sessions each second (from the server's tick numbers and timestamps): "
        "median, 5th percentile and slowest session"
        + (f", against the nominal {fmt(nominal)} Hz and the {fmt(threshold)} Hz threshold" if threshold else "")
        + (
            f". {saturated} second(s) shaded: the load generator was saturated, so they are not counted."
            if saturated
            else "."
        )
    )
    return Chart("Tick rate over time", caption, _png(fig))


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
    if threshold:
        ax.axhline(threshold, color=COLOURS["threshold"], ls=":", lw=1.2, label=f"threshold {fmt(threshold)} Hz")
    if nominal:
        ax.axhline(nominal, color=COLOURS["nominal"], ls="--", lw=1, label=f"nominal {fmt(nominal)} Hz")
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
        at = "" if t0 is None or onset.get("onset_second") is None else f" at t={onset['onset_second'] - t0} s"
        text = (
            f"Degradation onset{at}: {fmt(onset.get('players'))} players, p5 {fmt(onset.get('p5_hz'))} Hz "
            "(the first of the seconds in a row under the threshold)."
        )
    ax.set_xlabel("players connected")
    ax.set_ylabel("p5 tick rate (Hz)")
    ax.set_ylim(bottom=0)
    _legend(fig, ax, ncol=3)
    caption = "5th-percentile tick rate of each second against the players connected in it. " + text
    return Chart("Tick rate against players", caption, _png(fig))


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
    ax.plot(x, dropped.to_numpy(), color="#7b2d26", lw=1.2, label="sessions dropped/s")
    ax.plot(x, attempts.to_numpy(), color="#1f77b4", lw=1, label="reconnect attempts/s")
    ax.plot(x, limited.to_numpy(), color=COLOURS["429"], lw=1, ls="--", label="429s/s")
    for t in rf.index[rf["storms"].to_numpy() > 0]:
        ax.axvline(t / axis.scale, color="#555555", lw=0.8, ls=":")
    ax.set_xlabel(axis.label)
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    axes = [ax]
    tf = frames["ticks"]
    if len(tf):
        ax2 = ax.twinx()
        ax2.plot(axis.x(tf.index), tf["players"].to_numpy(), color="#2ca02c", lw=1, alpha=0.8, label="players")
        ax2.set_ylabel("players connected")
        ax2.set_ylim(bottom=0)
        axes.append(ax2)
    _legend(fig, *axes)
    storms = int(rf["storms"].sum())
    caption = (
        f"Reconnect storms ({storms} set off, dotted lines): sessions dropped, reconnect attempts and 429 "
        "responses per second, with the players connected; a healthy backend brings the green line back."
    )
    return Chart("Reconnect storm timeline", caption, _png(fig))


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
    return Chart("Recovery time", caption, _png(fig))


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
    return Chart("Replay verdicts", caption, _png(fig))


def _probe_steps(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    probe = (summary.get("rate_limit") or {}).get("probe") or {}
    return list(probe.get("steps") or [])


def _chart_probe(summary: Mapping[str, Any]) -> Chart | None:
    steps = _probe_steps(summary)
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
    return Chart("Rate-limit probe", caption, _png(fig))


__all__ = ["REPORT", "build_report", "fmt"]
