"""The collectors in Locust's web UI: five extra tabs, and the run's report after it stops.

Built only through Locust's extension points: ``template_args`` (``extended_tabs``,
``extended_tables``, ``extended_csv_files``), ``extended_stats`` added to the ``/stats/requests``
payload the page polls every two seconds, and routes on ``web_ui.app``. Every number comes from
the live summary (:mod:`loadtest.results.live`), which is built like the final report's summary, so
the tabs and the report agree.

Locust renders an extended tab as a plain table of text, so a cell cannot be coloured; a replay
that was accepted is marked with a red circle character instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.collectors import generator, ticks
from loadtest.collectors.keys import Family
from loadtest.results.reduction import Reduction

log = logging.getLogger(__name__)

BASE = "loadtest"
RED = "\N{LARGE RED CIRCLE}"
GREEN = "\N{WHITE HEAVY CHECK MARK}"
SPARKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
RECENT_SECONDS = 15
#: Files of the last finished run the page links to: route name -> (file, media type).
ARTIFACTS = {
    "report": ("report.html", "text/html"),
    "summary": ("summary.json", "application/json"),
    "junit": ("junit.xml", "application/xml"),
}

#: tab key -> (title, [(column key, column title)]); keys have no underscores because the page
#: camel-cases payload keys.
TABS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "lt-ticks": (
        "Ticks",
        [
            ("when", "Time"),
            ("players", "Players"),
            ("p50", "Tick p50 Hz"),
            ("p5", "Tick p5 Hz"),
            ("min", "Tick min Hz"),
            ("missed", "Missed ticks"),
            ("state", "State"),
        ],
    ),
    "lt-reconnects": (
        "Reconnects",
        [
            ("scope", "Scope"),
            ("dropped", "Dropped"),
            ("recovered", "Recovered"),
            ("ratio", "Recovered %"),
            ("p50", "Recovery p50 s"),
            ("p95", "Recovery p95 s"),
            ("max", "Recovery max s"),
            ("gaveup", "Gave up"),
            ("detail", "Detail"),
        ],
    ),
    "lt-ratelimits": (
        "Rate limits",
        [
            ("endpoint", "Endpoint"),
            ("requests", "Requests"),
            ("limited", "429s"),
            ("noretry", "429s without Retry-After"),
            ("retryafter", "Retry-After p50 s"),
            ("honoured", "Retry-After honoured"),
            ("ignored", "Retry-After not honoured"),
            ("probe", "Probe"),
        ],
    ),
    "lt-replay": (
        "Ticket replay",
        [
            ("kind", "Kind"),
            ("attempts", "Attempts"),
            ("rejected", "Rejected"),
            ("accepted", "Accepted"),
            ("verdict", "Verdict"),
        ],
    ),
    "lt-generator": (
        "Generator",
        [
            ("worker", "Worker"),
            ("cpu", "CPU now %"),
            ("cpumax", "CPU max %"),
            ("lag", "Loop lag p99 ms"),
            ("sessions", "Sessions now"),
            ("saturated", "Saturated s"),
            ("state", "State"),
        ],
    ),
}


def template_args() -> dict[str, Any]:
    """What the page needs to draw the tabs and the download links."""
    return {
        "extended_tabs": [{"title": title, "key": key} for key, (title, _) in TABS.items()],
        "extended_tables": [
            {"key": key, "structure": [{"key": k, "title": t} for k, t in columns]}
            for key, (_, columns) in TABS.items()
        ],
        "extended_csv_files": [
            {"href": f"./{BASE}/report", "title": "Download the loadtest HTML report (after the test stops)"},
            {"href": f"./{BASE}/summary", "title": "Download the loadtest summary.json (after the test stops)"},
            {"href": f"./{BASE}/junit", "title": "Download the loadtest junit.xml (after the test stops)"},
        ],
    }


# -- tables -------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}"


def sparkline(values: list[float | None], top: float | None = None) -> str:
    """A tick-rate trend in one cell: the table cannot hold a chart, eight block heights can.

    Heights run from 0 to ``top`` (the nominal rate), so a steady 60 Hz is a flat full line and
    noise of a tenth of a hertz does not look like a collapse."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    top = max(top or 0.0, *present) or 1.0
    return "".join(" " if v is None else SPARKS[max(0, min(7, int(v / top * 7.999)))] for v in values)


def ticks_rows(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    tick = summary["tick"]
    degradation = tick["degradation"]
    first = reduction.first_second or 0
    if degradation:
        state = (
            f"{RED} degraded from t={degradation['onset_second'] - first}s at "
            f"{degradation['players']} players (p5 {degradation['p5_hz']} Hz)"
        )
    elif tick["nominal_hz"]:
        state = f"healthy (threshold {tick['threshold_hz']} Hz)"
    else:
        state = "waiting for the first session"
    seconds: list[ticks.TickSecond] = getattr(reduction.reducer(ticks.NAME), "seconds", [])
    trend = sparkline([r.p5_hz for r in seconds[-60:]], tick["nominal_hz"])
    rows = [
        {
            "when": "whole run",
            "players": f"peak {tick['peak_players']}",
            "p50": _num(tick["p50_hz"]),
            "p5": _num(tick["p5_hz"]),
            "min": _num(tick["min_hz"]),
            "missed": tick["missed_ticks"],
            "state": f"{state}  p5 last 60 s: {trend}" if trend else state,
        }
    ]
    threshold = tick["threshold_hz"]
    saturated = getattr(reduction.reducer(generator.NAME), "saturated", set())
    for r in reversed(seconds[-RECENT_SECONDS:]):
        if r.second in saturated:
            note = "generator saturated"
        elif threshold and r.p5_hz is not None and r.p5_hz < threshold:
            note = f"{RED} below threshold"
        else:
            note = "ok"
        rows.append(
            {
                "when": f"t={r.second - first}s",
                "players": r.players,
                "p50": _num(r.p50_hz),
                "p5": _num(r.p5_hz),
                "min": _num(r.min_hz),
                "missed": r.missed,
                "state": note,
            }
        )
    return rows


def _recovery_row(scope: str, r: dict[str, Any], detail: str) -> dict[str, Any]:
    return {
        "scope": scope,
        "dropped": r["dropped"],
        "recovered": r["recovered"],
        "ratio": _pct(r["recovered_ratio"]),
        "p50": _num(r["recovery_p50_s"], 3),
        "p95": _num(r["recovery_p95_s"], 3),
        "max": _num(r["recovery_max_s"], 3),
        "gaveup": r["gave_up"],
        "detail": detail,
    }


def reconnect_rows(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    rc = summary["reconnect"]
    detail = f"{rc['storms']} storm(s), {rc['attempts']} attempts, {rc['limited']} met a 429"
    if rc.get("resumed") or rc.get("resume_refused"):
        detail += f", {rc['resumed']} resumed with a reconnection token ({rc['resume_refused']} refused)"
    if rc["storms_failed"]:
        detail += f", {RED} {rc['storms_failed']} storm(s) not carried out"
    rows = [_recovery_row("whole run", rc, detail)]
    for storm in rc["by_storm"]:
        rows.append(_recovery_row(f"storm at t={storm['at_s']}s", storm, ", ".join(storm["sides"]) + " side"))
    return rows


def _probe_text(probe: dict[str, Any] | None, endpoint: str) -> str:
    if not probe or probe["endpoint"] != endpoint:
        return ""
    steps = len(probe["steps"])
    if probe["enforced"]:
        limited = sum(s["limited"] for s in probe["steps"])
        return (
            f"limited from {probe['limited_from_rate']:g} req/s ({limited} x 429); sustained limit about "
            f"{_num(probe['estimated_limit_per_s'])} req/s ({steps} steps)"
        )
    top = max(s["offered_rate"] for s in probe["steps"])
    return f"{RED} no limit met up to {top:g} req/s ({steps} steps so far)"


def rate_limit_rows(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    rl, http = summary["rate_limit"], summary["http"]
    probe = rl["probe"]
    endpoints = sorted(set(http) | set(rl["responses_429"]) | ({probe["endpoint"]} if probe else set()))
    rows = []
    for endpoint in endpoints:
        rows.append(
            {
                "endpoint": endpoint,
                "requests": http.get(endpoint, {}).get("count", 0),
                "limited": rl["responses_429"].get(endpoint, 0),
                "noretry": rl["without_retry_after"].get(endpoint, 0),
                "retryafter": "",
                "honoured": "",
                "ignored": "",
                "probe": _probe_text(probe, endpoint),
            }
        )
    rows.append(
        {
            "endpoint": "all",
            "requests": sum(h["count"] for h in http.values()),
            "limited": rl["responses_429_total"],
            "noretry": sum(rl["without_retry_after"].values()),
            "retryafter": _num(rl["retry_after_p50_s"], 3),
            "honoured": rl["retry_after_honoured"],
            "ignored": rl["retry_after_not_honoured"],
            "probe": "no probe" if probe is None else ("limit enforced" if probe["enforced"] else f"{RED} no limit"),
        }
    )
    return rows


def replay_rows(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    rp = summary["replay"]

    def verdict(accepted: int, attempts: int) -> str:
        if accepted:
            return f"{RED} ACCEPTED {accepted} of {attempts}"
        return f"{GREEN} all refused" if attempts else "-"

    rows = [
        {
            "kind": kind,
            "attempts": k["attempts"],
            "rejected": k["rejected"],
            "accepted": k["accepted"],
            "verdict": verdict(k["accepted"], k["attempts"]),
        }
        for kind, k in rp["by_kind"].items()
    ]
    rows.append(
        {
            "kind": "all",
            "attempts": rp["attempts"],
            "rejected": rp["rejected"],
            "accepted": rp["accepted"],
            "verdict": verdict(rp["accepted"], rp["attempts"]) if rp["attempts"] else "no replay probe ran",
        }
    )
    return rows


def generator_rows(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    gen = summary["generator"]
    _, latest = reduction.latest.get(generator.NAME, (0, {}))
    rows = []
    for worker, w in gen["per_worker"].items():
        def now(field: Family, worker: str = worker) -> float:
            return latest.get(generator.WORKER(worker, field.head), 0)

        now_seconds = now(generator.SECONDS)
        cpu_now = now(generator.CPU_SUM) / now_seconds if now_seconds else None
        rows.append(
            {
                "worker": worker if len(worker) <= 24 else worker[:24] + "\N{HORIZONTAL ELLIPSIS}",
                "cpu": _num(cpu_now),
                "cpumax": _num(w["cpu_max_pct"]),
                "lag": _num(w["loop_lag_p99_ms"], 2),
                "sessions": int(now(generator.SESSIONS)) if now_seconds else "-",
                "saturated": w["seconds_saturated"],
                "state": f"{RED} saturated" if now(generator.SATURATED) else "healthy",
            }
        )
    rows.append(
        {
            "worker": f"all ({gen['workers']} process(es))",
            "cpu": "",
            "cpumax": _num(gen["cpu_max_pct"]),
            "lag": _num(gen["loop_lag_p99_ms"], 2),
            "sessions": "",
            "saturated": gen["seconds_saturated"],
            "state": f"{RED} saturated: tick numbers of those seconds are not used"
            if gen["verdict"] == "saturated"
            else "healthy",
        }
    )
    return rows


BUILDERS: dict[str, Callable[[dict[str, Any], Reduction], list[dict[str, Any]]]] = {
    "lt-ticks": ticks_rows,
    "lt-reconnects": reconnect_rows,
    "lt-ratelimits": rate_limit_rows,
    "lt-replay": replay_rows,
    "lt-generator": generator_rows,
}


def extended_stats(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    """The ``extended_stats`` entries of the stats payload: one table per tab."""
    return [{"key": key, "data": build(summary, reduction)} for key, build in BUILDERS.items()]


# -- wiring ---------------------------------------------------------------------------------------


def install(web_ui: Any, harness: Any) -> None:
    """Add the tabs, the payload extension and the download routes to a Locust ``WebUI``."""
    from flask import Response, make_response, request, send_file

    for name, value in template_args().items():
        web_ui.template_args[name] = [*web_ui.template_args.get(name, []), *value]

    @web_ui.app.after_request
    def _extend_stats(response: Response) -> Response:
        if not request.path.endswith("/stats/requests") or not response.is_json:
            return response
        live = harness.live
        if live is None:
            return response
        try:
            payload = response.get_json()
            payload["extended_stats"] = extended_stats(live.summary(), live.reduction)
            response.set_data(json.dumps(payload, allow_nan=False, default=str))
        except Exception:  # the live view must never break Locust's own page
            log.exception("loadtest: could not add the live collectors to the stats payload")
        return response

    @web_ui.app.route(f"/{BASE}/<artifact>")
    @web_ui.auth_required_if_enabled
    def _artifact(artifact: str) -> Response:
        if artifact not in ARTIFACTS:
            return make_response(f"No such file; there are: {', '.join(ARTIFACTS)}.\n", 404)
        name, mimetype = ARTIFACTS[artifact]
        folder = harness.finished_run
        if harness.current_run is not None or folder is None or not (Path(folder) / name).exists():
            # Never hand out the previous test's report as if it were this one's.
            state = "running (or its report is being written)" if harness.current_run is not None else "not started yet"
            return make_response(f"The test is {state}; its {name} is written when it stops.\n", 409)
        return send_file(
            (Path(folder) / name).resolve(),
            mimetype=mimetype,
            as_attachment=True,
            download_name=f"{Path(folder).name}-{name}",
        )

    @web_ui.app.route(f"/{BASE}/runs.json")
    @web_ui.auth_required_if_enabled
    def _runs() -> Response:
        return make_response(
            json.dumps({"finished": [str(p) for p in harness.finished_runs], "current": harness.current_run}),
            200,
            {"Content-Type": "application/json"},
        )
