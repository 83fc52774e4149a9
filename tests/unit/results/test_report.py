"""The HTML report and the per-second CSVs, built from synthetic run folders.

The folders are written the way a run writes them (Aggregator -> Record -> RunLog), by two
workers, so the report is tested on what it will really read: a minute with a ramp of players,
a tick-rate degradation, a reconnect storm with 429s, replay verdicts and a rate-limit probe.
No Locust and no backend: this runs in a couple of seconds.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loadtest.collectors.aggregates import Aggregator, merge_records
from loadtest.results import frames as series
from loadtest.results import report
from loadtest.results.reduction import Reduction
from loadtest.results.report import build_report
from loadtest.results.runfolder import RunFolder, RunLog
from loadtest.results.summary import summarise_folder

T0 = 1_800_000_000
SECONDS = 60
WORKERS = ("w1", "w2")
ONSET = 40  # p5 falls under the 54 Hz threshold from this second on
STORM = 30  # a reconnect storm with 429s, seconds 30..34
SATURATED = (55, 56)  # w2's generator is saturated here
ENDPOINTS = ("/join", "/request_token")
CSP = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
)
CHARTS = 9  # every chart has data in the full run
PNG = "data:image/png;base64,"


def players_at(s: int) -> int:
    return 10 + 2 * s  # per worker


def write_run(run: Path, *, seconds: int = SECONDS, torn: bool = False) -> Path:
    """A run folder as two workers and the master would leave it after ``seconds`` seconds."""
    log = RunLog(run)
    (run / "run.json").write_text(
        json.dumps(
            {
                # Credentials in the target must never reach the report.
                "host": "https://alice:hunter2@game.example:8443",
                "started": T0 + 0.25,
                "settings": {"nominal_tick_rate": 60.0, "degradation_threshold": 0.9},
            }
        ),
        encoding="utf-8",
    )
    log.write_target("start", {"gamebackend_tickets_consumed_total": 100.0, "gamebackend_players": 0.0})
    for w, worker in enumerate(WORKERS):
        aggs = {n: Aggregator(n) for n in ("ticks", "generator", "http", "sessions", "reconnect", "rate_limit")}
        for i in range(seconds):
            _one_second(aggs, w, i, T0 + i)
        for agg in aggs.values():
            log.write(agg.drain(worker))
    master = {n: Aggregator(n) for n in ("replay", "rate_limit")}
    for i in range(min(seconds, 20)):
        s = T0 + i
        for kind in ("ticket_reuse", "jwt_alg_none"):
            master["replay"].count(f"attempt:{kind}", 1, s)
            accepted = kind == "jwt_alg_none" and i % 5 == 0
            master["replay"].count(f"{'accepted' if accepted else 'rejected'}:{kind}", 1, s)
    if seconds >= 15:
        for rate, accepted, limited in ((2, 6, 0), (5, 15, 0), (10, 24, 6), (20, 25, 35)):
            for field, value in (("offered", accepted + limited), ("accepted", accepted), ("limited", limited)):
                if value:
                    master["rate_limit"].count(f"probe:/join:{rate:g}:{field}", value, T0 + 10)
            master["rate_limit"].count(f"probe:/join:{rate:g}:seconds", 3.0, T0 + 10)
    for agg in master.values():
        log.write(agg.drain("master"))
    log.write_target("end", {"gamebackend_tickets_consumed_total": 460.0, "gamebackend_players": 3.0})
    log.close()
    if torn:
        with open(run / "data" / "aggregates.jsonl", "a", encoding="utf-8") as fh:
            fh.write('\nnot a record\n{"c":"ticks","s":' + str(T0 + seconds) + ',"w":"w1","n":{"ticks":3')  # killed
    return run


def _one_second(aggs: dict[str, Aggregator], w: int, i: int, s: int) -> None:
    players = players_at(i)
    rate = 60.0 if i < ONSET else 45.0
    t, g, h, ss, rc, rl = (aggs[n] for n in ("ticks", "generator", "http", "sessions", "reconnect", "rate_limit"))
    t.count("connected", players, s)
    t.count("ticks", players * 60, s)
    t.count("messages", players * 60, s)
    t.count("welcomes", 2, s)
    t.count("nominal_hz_sum", 120.0, s)
    for p in range(players):
        t.observe("tick_rate_centihz", (rate - (p % 3) * 0.1) * 100, s)
    for k in range(5):
        t.observe("lag_us", 800 + 400 * k + 20 * i, s)
        t.observe("jitter_us", 100 + 50 * k, s)
    if i >= ONSET:
        t.count("missed", 3, s)
    saturated = w == 1 and i in SATURATED
    g.count("seconds", 1, s)
    g.count("cpu_pct_sum", 95.0 if saturated else 30.0, s)
    g.count("sessions", players, s)
    g.observe("cpu_x100_count", 9500 if saturated else 3000, s)
    g.observe("loop_lag_us", 2000 + 10 * i, s)
    if saturated:
        g.count("saturated", 1, s)
    storm = STORM <= i < STORM + 5
    for e, endpoint in enumerate(ENDPOINTS):
        n = 4 if endpoint == "/join" else 1
        limited = 2 if storm and endpoint == "/join" else 0
        h.count(f"requests:{endpoint}", n, s)
        h.count(f"status:{endpoint}:200", n - limited, s)
        if limited:
            h.count(f"status:{endpoint}:429", limited, s)
            h.count(f"failures:{endpoint}", limited, s)
            rl.count(f"429:{endpoint}", limited, s)
            rl.count(f"honoured:{endpoint}", limited, s)
        for k in range(n):
            h.observe(f"latency:{endpoint}_us", 5_000 * (e + 1) + 1_000 * k + (30_000 if storm else 0), s)
    ss.count("opened", 1, s)
    ss.observe("connect_us", 3_000 + 100 * i, s)
    ss.count("ended:client", 1, s)
    if i == STORM:
        ss.count("unexpected", 8, s)
        ss.count("ended:server_close", 8, s)
        rc.count("storms", 1, s)
        rc.count("dropped", 8, s)
        rc.count("dropped:server_close", 8, s)
    if storm:
        ss.count("connect_failed:rate_limited", 1, s)
        rc.count("attempts", 3, s)
        rc.count("limited", 1, s)
    if STORM < i <= STORM + 4:
        rc.count("recovered", 2, s)
        for k in range(2):
            rc.observe("recovery_ms", 1_000 * (i - STORM) + 300 * k, s)
    if i == STORM + 5 and w == 0:
        rc.count("gave_up", 1, s)


def finish(summary: dict[str, Any], *, incomplete: bool = False, **extra: Any) -> dict[str, Any]:
    summary["incomplete"] = incomplete
    # The shape loadtest.cli.run.finish gives it.
    summary["scenario"] = {"name": "storm <b>drill</b>", "users": 130, "duration_s": 60.0, "workers": 2, "defects": []}
    summary["gates"] = [
        {
            "name": "tick.p5_hz >= 54",
            "expression": "tick.p5_hz >= 54",
            "value": summary["tick"]["p5_hz"],
            "passed": False,
            "message": "tick.p5_hz = 45: FAILED",
        },
        {
            "name": "replay.accepted == 0",
            "expression": "replay.accepted == 0",
            "value": 0,
            "passed": True,
            "message": "replay.accepted = 0: passed",
        },
    ]
    summary["findings"] = ["Tick rate degraded at 100 players.", "jwt_alg_none was accepted <script>x</script>."]
    summary["aborted"] = None
    summary.update(extra)
    summary["passed"] = all(g["passed"] for g in summary["gates"]) and not incomplete
    return summary


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    run = write_run(tmp_path_factory.mktemp("full") / "run")
    summary = finish(summarise_folder(run))
    path = build_report(run, summary)
    return run, summary, path.read_text(encoding="utf-8")


def _csv(run: Path, name: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(run / "data" / f"{name}.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _assert_self_contained(html: str) -> None:
    assert CSP in html
    refs = re.findall(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    assert refs, "expected at least the chart images"
    for ref in refs:
        assert ref.startswith(PNG), ref
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "<script" not in html.lower()  # the findings' text is escaped, never markup
    assert "<link" not in html.lower() and "@import" not in html and "url(" not in html


def test_summary_of_the_synthetic_run_has_what_the_report_draws(full_run: tuple[Path, dict[str, Any], str]) -> None:
    # Guards the fixture: if these move, the report assertions below would test nothing.
    _, summary, _ = full_run
    assert summary["tick"]["degradation"]["onset_second"] == T0 + ONSET
    assert summary["tick"]["degradation"]["players"] == 2 * players_at(ONSET)
    assert summary["generator"]["seconds_saturated"] == len(SATURATED)
    assert summary["reconnect"]["recovered"] == 2 * 2 * 4
    assert summary["rate_limit"]["probe"]["limited_from_rate"] == 10
    assert summary["replay"]["by_kind"]["jwt_alg_none"]["accepted"] == 4


def test_report_is_self_contained_and_embeds_every_chart(full_run: tuple[Path, dict[str, Any], str]) -> None:
    run, _, html = full_run
    _assert_self_contained(html)
    assert html.count(PNG) == CHARTS
    for title in (
        "Load",
        "Response times",
        "Status codes",
        "Tick rate over time",
        "Tick rate against players",
        "Reconnect storm timeline",
        "Recovery time",
        "Replay verdicts",
        "Rate-limit probe",
    ):
        assert f"<h3>{title}</h3>" in html
    assert (run / "report.html").stat().st_size < 1_500_000


def test_report_header_gates_and_findings(full_run: tuple[Path, dict[str, Any], str]) -> None:
    _, _, html = full_run
    assert "storm &lt;b&gt;drill&lt;/b&gt;" in html  # autoescaped
    assert "game.example:8443" in html and "hunter2" not in html and "alice" not in html
    assert "2027-01-15 08:00:00 UTC" in html  # T0
    assert "(planned 1m 00s)" in html and "<th>Worker processes</th><td>2</td>" in html
    assert "FAILED" in html and "PASSED" not in html  # a gate failed
    assert "INCOMPLETE" not in html and "ABORTED" not in html
    assert ">saturated (2 second(s) saturated)<" in html
    gate_rows = re.findall(r"<td class=\"(ok|bad)\">(PASS|FAIL)</td>\s*<td><code>([^<]+)</code>", html)
    assert gate_rows == [("bad", "FAIL", "tick.p5_hz &gt;= 54"), ("ok", "PASS", "replay.accepted == 0")]
    assert "<li>Tick rate degraded at 100 players.</li>" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "No findings" not in html


def test_percentile_tables_match_the_summary(full_run: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, html = full_run
    section = html.split('id="latency"', 1)[1].split("</section>", 1)[0]
    rows = {
        m[0]: m[1:]
        for m in re.findall(r"<tr>\s*<td>([^<]+)</td>" + r"\s*<td class=\"n[^\"]*\">([^<]*)</td>" * 8, section)
    }
    assert set(rows) == {"join (/join)", "token (/request_token)", "WS connect"}
    join = summary["http"]["join"]
    assert join["path"] == "/join"
    count, failures_pct, _, p50, _, p95, p99, _ = rows["join (/join)"]
    assert int(count.replace(",", "")) == join["count"] == 2 * SECONDS * 4
    assert float(failures_pct) == pytest.approx(100 * join["failures"] / join["count"], abs=0.01)
    assert (float(p50), float(p95), float(p99)) == (join["p50_ms"], join["p95_ms"], join["p99_ms"])
    ws = rows["WS connect"]
    assert int(ws[0]) == summary["ws"]["sessions_opened"] + sum(summary["ws"]["connect_failed"].values())
    assert float(ws[3]) == summary["ws"]["connect_p50_ms"]


def test_csvs_have_the_expected_columns_and_rows(full_run: tuple[Path, dict[str, Any], str]) -> None:
    run, _, _ = full_run
    columns, rows = _csv(run, "ticks")
    assert columns == ["t", *series.columns('ticks')]
    assert [int(r["t"]) for r in rows] == list(range(SECONDS))
    assert rows[0]["time"] == "2027-01-15T08:00:00Z"
    assert all(float(r["p5_hz"]) >= 54 for r in rows[:ONSET]) and all(float(r["p5_hz"]) < 54 for r in rows[ONSET:])
    assert [int(r["players"]) for r in rows[:2]] == [2 * players_at(0), 2 * players_at(1)]
    assert [r["t"] for r in rows if r["saturated"] == "True"] == [str(s) for s in SATURATED]

    columns, rows = _csv(run, "http")
    assert columns == ["t", *series.columns('http')]
    assert len(rows) == SECONDS * len(ENDPOINTS)
    storm = [r for r in rows if r["endpoint"] == "/join" and STORM <= int(r["t"]) < STORM + 5]
    assert {r["status_429"] for r in storm} == {"4"} and {r["status_2xx"] for r in storm} == {"4"}

    columns, rows = _csv(run, "generator")
    assert columns == ["t", *series.columns('generator')] and len(rows) == SECONDS
    saturated = rows[SATURATED[0]]
    assert float(saturated["cpu_max_pct"]) == pytest.approx(95, rel=0.01) and saturated["processes"] == "2"

    columns, rows = _csv(run, "sessions")
    assert columns[: len(series.columns('sessions')) + 1] == ["t", *series.columns('sessions')]
    assert {"ended_client", "ended_server_close", "connect_failed_rate_limited"} <= set(columns)
    assert len(rows) == SECONDS and sum(int(r["unexpected"]) for r in rows) == 16

    columns, rows = _csv(run, "reconnect")
    assert columns == ["t", *series.columns('reconnect')]
    assert [int(r["t"]) for r in rows] == list(range(STORM, STORM + 6))
    assert rows[0]["dropped"] == "16" and rows[0]["recovery_p50_s"] == ""  # nobody recovered yet
    assert float(rows[1]["recovery_p50_s"]) == pytest.approx(1.0, rel=0.01)

    columns, rows = _csv(run, "rate_limit")
    assert columns == ["t", *series.columns('rate_limit')]
    assert len(rows) == 5 and {r["responses_429"] for r in rows} == {"4"}  # probe steps are not in it

    columns, rows = _csv(run, "replay")
    assert columns == ["t", *series.columns('replay')] and len(rows) == 20 * 2
    assert sum(int(r["accepted"]) for r in rows if r["kind"] == "jwt_alg_none") == 4


def test_one_pass_reader_gives_the_same_tables_as_merging_every_record_in_memory(
    full_run: tuple[Path, dict[str, Any], str],
) -> None:
    run, _, _ = full_run
    from loadtest.results.reduction import read

    streamed = series.frames(read(run).reduction)
    merged = merge_records(RunFolder(run).records())
    reduction = Reduction(tables=True)
    for second in sorted({s for per in merged.values() for s in per}):
        reduction.add_second(second, {c: per[second] for c, per in merged.items() if second in per})
    in_memory = series.frames(reduction)
    assert set(streamed) == set(series.NAMES)
    for name in series.NAMES:
        pd.testing.assert_frame_equal(streamed[name], in_memory[name])


def test_interrupted_run_gets_a_banner_and_its_partial_data(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", seconds=12, torn=True)
    summary = finish(summarise_folder(run), incomplete=True, aborted="gate tick.p5_hz >= 54 failed")
    html = build_report(run, summary).read_text(encoding="utf-8")
    _assert_self_contained(html)
    assert "INCOMPLETE" in html and "ABORTED: gate tick.p5_hz &gt;= 54 failed" in html
    assert 'class="verdict fail"' in html
    # Twelve seconds: no storm, no probe, no degradation; the torn last line is skipped.
    assert html.count(PNG) == 6
    assert "Reconnect storm timeline" not in html and "Rate-limit probe</h3>" not in html
    _, rows = _csv(run, "ticks")
    assert len(rows) == 12
    columns, rows = _csv(run, "reconnect")
    assert columns == ["t", *series.columns('reconnect')] and rows == []


@pytest.mark.parametrize("log", ["empty", "missing"])
def test_empty_log_gives_a_report_saying_so(tmp_path: Path, log: str) -> None:
    run = tmp_path / "run"
    if log == "empty":
        RunLog(run).close()
    else:
        run.mkdir()
    summary = summarise_folder(run)
    summary["incomplete"] = True
    html = build_report(run, summary).read_text(encoding="utf-8")
    assert CSP in html and PNG not in html
    assert "NO DATA" in html and "No data to chart." in html and "No findings." in html
    assert "No gates were set" in html and "INCOMPLETE" in html
    for name in series.NAMES:
        columns, rows = _csv(run, name)
        assert columns[0] == "t" and "time" in columns and rows == []


def test_a_bare_summary_is_enough(tmp_path: Path) -> None:
    """A caller with only gates and a verdict (no analysis keys at all) still gets a report."""
    run = write_run(tmp_path / "run", seconds=3)
    html = build_report(run, {"passed": True, "gates": [], "findings": []}).read_text(encoding="utf-8")
    assert 'class="verdict pass"' in html and "(no scenario)" in html
    assert html.count(PNG) >= 3


def test_verdict_without_a_passed_key_needs_every_gate_and_a_whole_run() -> None:
    ok, bad = {"passed": True}, {"passed": False}
    assert report._header({"gates": [ok, ok]}, None, 0)["passed"] is True
    assert report._header({"gates": [ok, bad]}, None, 0)["passed"] is False
    assert report._header({"gates": [ok], "incomplete": True}, None, 0)["passed"] is False
    assert report._header({"gates": [ok], "aborted": "gate failed"}, None, 0)["passed"] is False
    assert report._header({"gates": [bad], "passed": True}, None, 0)["passed"] is True  # the caller's verdict wins
