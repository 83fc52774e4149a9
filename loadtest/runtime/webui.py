"""The collectors in Locust's web UI: five extra tabs, a live charts page, and the run's report after it stops.

Built only through Locust's extension points: ``template_args`` (``extended_tabs``,
``extended_tables``, ``extended_csv_files``), ``extended_stats`` added to the ``/stats/requests``
payload the page polls every two seconds, and routes on ``web_ui.app``. Every number comes from
the live summary (:mod:`loadtest.results.live`), which is built like the final report's summary, so
the tabs and the report agree.

Locust renders an extended tab as a plain table of text, so a cell cannot be coloured; what must be
looked at is marked with a word in brackets (``[FAIL]``, ``[WARN]``), which every font has (an
emoji needs an emoji font that Debian's Chromium does not bring).
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
#: Marks in words: they read without colour and render in any font.
RED = "[FAIL]"
WARN = "[WARN]"
GREEN = "[OK]"
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
        "Storms",
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
        "Limits",
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
        "Replay",
        [
            ("kind", "Kind"),
            ("attempts", "Attempts"),
            ("rejected", "Rejected"),
            ("accepted", "Accepted"),
            ("verdict", "Verdict"),
        ],
    ),
    "lt-integrity": (
        "Integrity",
        [
            ("check", "Plan"),
            ("planned", "Planned"),
            ("sofar", "So far"),
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
            {
                "href": f"./{BASE}/charts",
                "title": "Open the loadtest live charts (tick rate, players, 429s, reconnects)",
            },
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
    elif tick["ticks_received"]:
        state = "tick verdicts not checked: nominal tick rate unknown"
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
    rl, steps = summary["rate_limit"], summary["http"]
    # Rate-limit counts are by step, as the HTTP section is; the probe names the path it hit.
    step_of_path = {path: step for step, v in steps.items() for path in str(v.get("path", "")).split(", ") if path}
    probe = rl["probe"]
    probed = step_of_path.get(probe["endpoint"], probe["endpoint"]) if probe else None
    names = sorted(set(steps) | set(rl["responses_429"]) | ({probed} if probed else set()))
    rows = []
    for step in names:
        path = steps.get(step, {}).get("path") or (probe["endpoint"] if probe and step == probed else step)
        rows.append(
            {
                "endpoint": step if path == step else f"{step} ({path})",
                "requests": steps.get(step, {}).get("count", 0),
                "limited": rl["responses_429"].get(step, 0),
                "noretry": rl["without_retry_after"].get(step, 0),
                "retryafter": "",
                "honoured": "",
                "ignored": "",
                "probe": _probe_text(probe, probe["endpoint"] if probe and step == probed else step),
            }
        )
    rows.append(
        {
            "endpoint": "all",
            "requests": sum(h["count"] for h in steps.values()),
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
                "state": f"{WARN} saturated" if now(generator.SATURATED) else "healthy",
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
            "state": f"{WARN} saturated: tick numbers of those seconds are not used"
            if gen["verdict"] == "saturated"
            else "healthy",
        }
    )
    return rows


def integrity_rows(integrity: dict[str, Any] | None, reduction: Reduction) -> list[dict[str, Any]]:
    """Plan against what happened so far, one row per promise of the scenario: the report's
    "run integrity" line while it can still change."""
    if integrity is None:
        return [{"check": "plan", "planned": "-", "sofar": "-", "state": "waiting for the first second"}]
    elapsed = (reduction.last_second or 0) - (reduction.first_second or 0) + 1 if reduction.first_second else 0
    rows = []
    planned = integrity.get("planned_users")
    if planned is not None:
        peak = integrity.get("peak_connected", 0)
        rows.append(
            {
                "check": "players connected at once",
                "planned": planned,
                "sofar": f"peak {peak}",
                "state": GREEN if peak >= planned else f"{WARN} below plan so far",
            }
        )
    for stage in integrity.get("stages") or []:
        rows.append(
            {
                "check": f"stage {stage['stage']}",
                "planned": stage["users"],
                "sofar": f"peak {stage['peak_connected']}",
                "state": GREEN if stage["peak_connected"] >= stage["users"] else "not reached yet",
            }
        )
    if integrity.get("workers_expected"):
        seen, expected = integrity.get("workers_seen", 0), integrity["workers_expected"]
        lost = integrity.get("workers_lost") or []
        rows.append(
            {
                "check": "worker processes",
                "planned": expected,
                "sofar": seen,
                "state": f"{RED} {len(lost)} lost" if lost else (GREEN if seen >= expected else f"{WARN} missing"),
            }
        )
    for storm in integrity.get("storms") or []:
        due = storm["at_s"] <= elapsed
        if storm["carried_out"]:
            state = f"{GREEN} {storm['dropped']} dropped"
        elif not due:
            state = "not due yet"
        else:
            state = f"{RED} {storm.get('why') or 'not set off'}"
        rows.append(
            {"check": f"{storm['side']} storm", "planned": f"at {storm['at_s']:g} s", "sofar": "", "state": state}
        )
    for probe in integrity.get("probes") or []:
        state = GREEN if probe["checked"] else f"{WARN} {probe.get('why') or 'not yet'}"
        rows.append(
            {
                "check": probe["probe"],
                "planned": "runs",
                "sofar": f"{probe['attempts']} attempts so far",
                "state": state,
            }
        )
    verdict = GREEN + " on plan so far" if integrity.get("carried_out") else RED + " " + "; ".join(integrity["reasons"])
    rows.append({"check": "the run", "planned": "", "sofar": f"{elapsed} s", "state": verdict})
    return rows


BUILDERS: dict[str, Callable[[dict[str, Any], Reduction], list[dict[str, Any]]]] = {
    "lt-ticks": ticks_rows,
    "lt-reconnects": reconnect_rows,
    "lt-ratelimits": rate_limit_rows,
    "lt-replay": replay_rows,
}


def extended_stats(
    summary: dict[str, Any], reduction: Reduction, integrity: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The ``extended_stats`` entries of the stats payload: one table per tab."""
    tables = [{"key": key, "data": build(summary, reduction)} for key, build in BUILDERS.items()]
    rows = integrity_rows(integrity, reduction) + generator_integrity_rows(summary, reduction)
    return [*tables, {"key": "lt-integrity", "data": rows}]


def generator_integrity_rows(summary: dict[str, Any], reduction: Reduction) -> list[dict[str, Any]]:
    """The load generator's own health, in the Integrity tab: a saturated generator measures
    itself, not the target, so it belongs with the plan (and the tab bar has no room for a tab of its own)."""
    rows = []
    for g in generator_rows(summary, reduction):
        now = f"CPU now {g['cpu']} %, " if g["cpu"] not in ("", "-") else ""
        detail = f"{now}CPU max {g['cpumax']} %, loop lag p99 {g['lag']} ms"
        if g["sessions"] != "":
            detail += f", {g['sessions']} sessions"
        scope = g["worker"] if g["worker"].startswith("all") else f"worker {g['worker']}"
        rows.append(
            {
                "check": f"load generator: {scope}",
                "planned": "not saturated",
                "sofar": f"{detail}; {g['saturated']} s saturated",
                "state": g["state"] if g["state"].startswith("[") else f"{GREEN} {g['state']}",
            }
        )
    return rows


def series_payload(live: Any, planned_users: int | None, running: bool) -> dict[str, Any]:
    """What the live charts draw: one row per settled second, ``t`` from the run's first second."""
    summary = live.summary()
    rows = list(live.series)
    first = rows[0]["second"] if rows else 0
    tick = summary.get("tick") or {}
    return {
        "running": running,
        "nominal_hz": tick.get("nominal_hz"),
        "threshold_hz": tick.get("threshold_hz"),
        "planned_users": planned_users,
        "rows": [{**{k: v for k, v in r.items() if k != "second"}, "t": r["second"] - first} for r in rows],
    }


STATIC = Path(__file__).resolve().parent / "static"
#: The charts page may run only its own script and talk only to this server: no inline script, no CDN.
CHARTS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
CHARTS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>game-loadtest live charts</title>
<link rel="stylesheet" href="charts.css"></head>
<body>
<h1>Live charts</h1>
<p id="state">Waiting for the first settled second.</p>
<p>Refreshed every 2 seconds; a second is drawn once every worker's share of it has arrived (3 s late).
Nominal tick rate <span id="nominal">-</span>, degradation threshold <span id="threshold">-</span>.
<a href="../">Back to the Locust page</a>.</p>
<div class="grid">
<figure><canvas id="tick"></canvas><figcaption class="key">Tick rate players measured:
<b class="p50"></b>p50 <b class="p5"></b>p5 <b class="min"></b>slowest <b class="nominal"></b>nominal
<b class="threshold"></b>threshold. Good: the lines on the nominal line, p5 above the threshold.</figcaption></figure>
<figure><canvas id="players"></canvas><figcaption class="key">Players connected <b class="players"></b>
against planned users <b class="nominal"></b>. Good: on the planned line; short dips are sessions ending and
rejoining.</figcaption></figure>
<figure><canvas id="limited"></canvas><figcaption class="key">429 responses players met per second
<b class="limited"></b>. Good: none, or only during a storm or the rate-limit probe.</figcaption></figure>
<figure><canvas id="reconnects"></canvas><figcaption class="key">Sessions dropped <b class="dropped"></b>
and reconnect attempts <b class="attempts"></b> per second. Good: attempts follow drops and stop within
seconds.</figcaption></figure>
</div>
<script src="charts.js"></script>
</body></html>
"""


# -- wiring ---------------------------------------------------------------------------------------


def install(web_ui: Any, harness: Any) -> None:
    """Add the tabs, the payload extension and the download routes to a Locust ``WebUI``."""
    from flask import Response, make_response, request, send_file

    for name, value in template_args().items():
        web_ui.template_args[name] = [*web_ui.template_args.get(name, []), *value]

    scenario_cache: list[Any] = []
    #: The live view of the test that ran last: the charts keep showing it after it stops.
    last_live: list[Any] = [None]

    def _scenario() -> Any:
        if not scenario_cache:
            from loadtest.runtime.records import _scenario_for_web

            scenario_cache.append(_scenario_for_web())
        return scenario_cache[0]

    @web_ui.app.after_request
    def _extend_stats(response: Response) -> Response:
        if not request.path.endswith("/stats/requests") or not response.is_json:
            return response
        live = harness.live
        if live is None:
            return response
        try:
            payload = response.get_json()
            try:
                integrity = live.integrity(_scenario())
            except Exception:  # the other tabs still show; the Integrity tab says it is waiting
                log.exception("loadtest: could not check the run's plan for the Integrity tab")
                integrity = None
            payload["extended_stats"] = extended_stats(live.summary(), live.reduction, integrity)
            response.set_data(json.dumps(payload, allow_nan=False, default=str))
        except Exception:  # the live view must never break Locust's own page
            log.exception("loadtest: could not add the live collectors to the stats payload")
        return response

    def _planned_users() -> int | None:
        """The users asked for: Locust's target (the form's number) when a test runs, else the scenario's."""
        runner = getattr(harness.environment, "runner", None)
        target = getattr(runner, "target_user_count", None)
        if isinstance(target, int) and target > 0:
            return target
        scenario = _scenario()
        return None if scenario is None else getattr(scenario, "users", None)

    def _charts_response(body: str | bytes, mimetype: str) -> Response:
        response = make_response(body, 200)
        response.headers["Content-Type"] = mimetype
        response.headers["Content-Security-Policy"] = CHARTS_CSP
        response.headers["Cache-Control"] = "no-store"
        return response

    @web_ui.app.route(f"/{BASE}/charts")
    @web_ui.auth_required_if_enabled
    def _charts_page() -> Response:
        return _charts_response(CHARTS_PAGE, "text/html; charset=utf-8")

    @web_ui.app.route(f"/{BASE}/charts.js")
    @web_ui.auth_required_if_enabled
    def _charts_js() -> Response:
        return _charts_response((STATIC / "charts.js").read_bytes(), "text/javascript; charset=utf-8")

    @web_ui.app.route(f"/{BASE}/charts.css")
    @web_ui.auth_required_if_enabled
    def _charts_css() -> Response:
        return _charts_response((STATIC / "charts.css").read_bytes(), "text/css; charset=utf-8")

    @web_ui.app.route(f"/{BASE}/series.json")
    @web_ui.auth_required_if_enabled
    def _series() -> Response:
        live = harness.live or last_live[0]
        if live is None:
            payload: dict[str, Any] = {"running": False, "nominal_hz": None, "threshold_hz": None, "rows": []}
        else:
            if harness.live is not None:
                last_live[0] = harness.live
            payload = series_payload(live, _planned_users(), harness.live is not None)
        return _charts_response(json.dumps(payload, allow_nan=False, default=str), "application/json")

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
