"""The collectors in Locust's web UI, driven in a real headless Chromium.

``loadtest run --web`` serves Locust's page with five extra tabs. The browser starts the swarm from
the page, reads live, non-zero values in every tab, stops the test and downloads the run's HTML
report through the page's link. Chromium comes from Debian (``.ci/run`` installs it when missing);
Playwright drives it with ``executable_path``, never a browser of its own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtest.collectors.aggregates import Bucket
from loadtest.results.live import Live
from loadtest.results.reduction import Reduction
from loadtest.results.runfolder import RunFolder
from loadtest.results.summary import summarise_folder
from loadtest.runtime.webui import CHARTS_CSP, extended_stats, integrity_rows, replay_rows, sparkline, template_args
from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
#: The flags this machine's closed network needs (no background connections, no sandbox as root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SCENARIO = """
[scenario]
name = "webui-check"
description = "two workers, a storm, replay and rate-limit probes, and a replay defect to be caught"
duration = "90s"

[load]
users = 6
spawn_rate = 6
workers = 2

[player]
session_length = "5m"
input_rate = 5

[probes]
replay_rate = 4.0
rate_limit_endpoint = "/request_token"
rate_limit_steps = [5, 40]
rate_limit_step_seconds = "1s"

[target]
defects = ["jwt-alg-none"]

[[events]]
at = "4s"
kind = "storm"
side = "client"
fraction = 0.5

[[gates]]
expr = "replay.accepted == 0"

[[gates]]
expr = "tick.p50_hz >= 30"
"""


# -- the tables, without a browser ------------------------------------------------------------------


def test_every_tab_has_a_table_and_a_download_link_for_the_report() -> None:
    args = template_args()
    tabs = [t["key"] for t in args["extended_tabs"]]
    assert tabs == [t["key"] for t in args["extended_tables"]]
    titles = [t["title"] for t in args["extended_tabs"]]
    assert titles == ["Ticks", "Storms", "Limits", "Replay", "Integrity"]
    for table in args["extended_tables"]:
        # The page camel-cases payload keys; a key without underscores is the same on both sides.
        assert all("_" not in column["key"] for column in table["structure"])
    assert any(link["href"].endswith("/report") for link in args["extended_csv_files"])
    assert any(link["href"].endswith("/charts") for link in args["extended_csv_files"])


def test_an_accepted_replay_is_marked_in_words_and_a_refused_one_is_not() -> None:
    summary = {
        "replay": {
            "attempts": 3,
            "rejected": 2,
            "accepted": 1,
            "by_kind": {
                "ticket_reuse": {"attempts": 2, "rejected": 1, "accepted": 1},
                "jwt_expired": {"attempts": 1, "rejected": 1, "accepted": 0},
            },
        }
    }
    rows = {r["kind"]: r["verdict"] for r in replay_rows(summary, Reduction())}
    # A mark in ASCII words: no emoji font is needed to see it (Debian's Chromium has none).
    assert rows["ticket_reuse"].startswith("[FAIL] ACCEPTED 1 of 2")
    assert "[FAIL]" not in rows["jwt_expired"] and rows["jwt_expired"].startswith("[OK]")
    assert rows["all"].startswith("[FAIL] ACCEPTED 1 of 3")
    assert all(ord(c) < 128 for r in rows.values() for c in r)


def test_integrity_rows_say_what_is_due_and_what_is_missing() -> None:
    reduction = Reduction()
    reduction.first_second, reduction.last_second = 1000, 1009  # ten seconds settled
    integrity = {
        "carried_out": False,
        "reasons": ["storm at 5 s was not set off"],
        "planned_users": 6,
        "peak_connected": 6,
        "stages": [],
        "workers_expected": 2,
        "workers_seen": 2,
        "workers_lost": [],
        "storms": [
            {"at_s": 5.0, "side": "client", "carried_out": False, "dropped": 0, "why": "no session to drop"},
            {"at_s": 60.0, "side": "server", "carried_out": False, "dropped": 0, "why": "not reached"},
        ],
        "probes": [{"probe": "replay ticket_reuse", "checked": True, "attempts": 3, "why": None}],
    }
    rows = {r["check"]: r for r in integrity_rows(integrity, reduction)}
    assert rows["players connected at once"]["state"] == "[OK]"
    assert rows["client storm"]["state"] == "[FAIL] no session to drop"
    assert rows["server storm"]["state"] == "not due yet"
    assert rows["the run"]["state"].startswith("[FAIL] storm at 5 s") and rows["the run"]["sofar"] == "10 s"


def test_sparkline_is_flat_at_the_nominal_rate_and_falls_with_the_tick_rate() -> None:
    assert sparkline([60.0, 59.9, 60.0], top=60.0) == "\u2588\u2588\u2588"
    line = sparkline([60.0, 30.0, 5.0, None], top=60.0)
    assert line[0] > line[1] > line[2] and line[3] == " "


# -- the real page ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout:g} s")


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium, installed with apt-get when missing; without it the browser test skips (fails in CI)."""
    if not Path(CHROMIUM).exists():
        installer = Path(__file__).resolve().parents[2] / ".ci" / "install-chromium"
        subprocess.run([str(installer)], timeout=600, check=False)
    if not Path(CHROMIUM).exists():
        require(f"{CHROMIUM} is missing and .ci/install-chromium could not install it (apt-get needs root or sudo)")
    return CHROMIUM


@pytest.fixture
def web_run(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    scenario = tmp_path / "webui.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    port = _free_port()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest", "run", str(scenario), "--web", "--web-port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", 60)
        yield f"http://127.0.0.1:{port}/", out, proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _table(page: object) -> list[list[str]]:
    rows = page.locator("table tbody tr")  # type: ignore[attr-defined]
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


def _num(text: str) -> float:
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(match.group()) if match else 0.0


def _until(page: object, tab: str, check: Callable[[list[list[str]]], bool], timeout: float = 45) -> list[list[str]]:
    """Open a tab and wait until its table (refreshed by the page every 2 s) passes ``check``."""
    page.get_by_role("tab", name=tab).click()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        rows = _table(page)
        if rows and check(rows):
            return rows
        page.wait_for_timeout(500)  # type: ignore[attr-defined]
    raise AssertionError(f"tab {tab!r} never showed the expected live values; last table: {rows}")


def _row(rows: list[list[str]], first: str) -> list[str]:
    return next(r for r in rows if r and r[0] == first)


@pytest.mark.slow
@pytest.mark.xdist_group("heavy")
def test_live_tabs_in_a_real_browser_then_the_reports_download(
    chromium: str, web_run: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    from playwright import sync_api as playwright

    url, out, proc = web_run
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900}, accept_downloads=True)
        try:
            page.goto(url)
            page.fill("input[name=userCount]", "6")
            page.fill("input[name=spawnRate]", "6")
            page.get_by_role("button", name="Start").click()

            # Columns as in loadtest.runtime.webui.TABS.
            ticks = _until(page, "Ticks", lambda rows: len(rows) > 2 and _num(rows[1][1]) > 0 and _num(rows[1][2]) > 50)
            assert _row(ticks, "whole run")[2] != "-"
            reconnects = _until(page, "Storms", lambda rows: _num(_row(rows, "whole run")[2]) > 0)
            assert _num(_row(reconnects, "whole run")[1]) > 0
            assert any(r[0].startswith("storm at t=") for r in reconnects)
            limits = _until(page, "Limits", lambda rows: "limited from" in _row(rows, "token (/request_token)")[7])
            assert _num(_row(limits, "all")[1]) > 0 and _row(limits, "all")[7] == "limit enforced"
            # Every tab fits the tab bar at 1500 px: none is cut off or scrolled out of sight.
            cut = page.evaluate(
                "() => [...document.querySelectorAll('[role=tab]')].filter(t => { const r = t.getBoundingClientRect();"
                " const bar = t.closest('[role=tablist]').getBoundingClientRect();"
                " return r.right > Math.min(bar.right, innerWidth) + 1 || r.left < bar.left - 1; })"
                ".map(t => t.innerText)"
            )
            assert cut == [], f"tabs cut off at 1500 px: {cut}"
            replay = _until(page, "Replay", lambda rows: "ACCEPTED" in _row(rows, "all")[4])
            assert "ACCEPTED" in _row(replay, "jwt_alg_none")[4]
            assert _num(_row(replay, "all")[1]) > 0
            integrity = _until(page, "Integrity", lambda rows: "[OK]" in _row(rows, "client storm")[3])
            workers = [r for r in integrity if r[0].startswith("load generator: worker ")]
            assert len(workers) == 2 and all("CPU now" in r[2] for r in workers)
            assert _row(integrity, "load generator: all (2 process(es))")[3] == "[OK] healthy"
            page.screenshot(path=str(tmp_path / "integrity-tab.png"))  # to look at, pass or fail
            assert _row(integrity, "worker processes")[2] == "2" and _row(integrity, "the run")[3].startswith("[OK]")

            # The live charts page, linked from the Download Data tab, under its own strict CSP.
            page.get_by_role("tab", name="Download Data").click()
            href = page.get_by_role("link", name=re.compile("loadtest live charts")).get_attribute("href")
            charts = browser.new_page(viewport={"width": 1500, "height": 900})
            refused: list[str] = []
            charts.on("console", lambda m: "Content Security" in m.text and refused.append(m.text))
            response = charts.goto(url + href.lstrip("./"))
            assert response is not None and response.headers["content-security-policy"] == CHARTS_CSP
            charts.wait_for_function("() => Number(document.body.dataset.seconds || 0) > 0", timeout=20_000)
            seconds = int(charts.evaluate("() => document.body.dataset.seconds"))
            charts.wait_for_function(f"() => Number(document.body.dataset.seconds) > {seconds}", timeout=20_000)
            assert "Running:" in charts.inner_text("#state") and charts.inner_text("#nominal").endswith("Hz")
            inked = charts.evaluate(
                "() => ['tick', 'players'].map(id => { const c = document.getElementById(id);"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
                " for (let i = 0; i < d.length; i += 4)"
                " if (d[i + 3] && (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2])) n++;"
                " return n; })"
            )
            assert all(n > 50 for n in inked), f"the charts drew no coloured line: {inked}"
            assert not refused, refused
            series = charts.request.get(url + "loadtest/series.json").json()
            assert series["running"] is True and series["planned_users"] == 6 and series["nominal_hz"] == 60
            ts = [r["t"] for r in series["rows"]]
            assert ts == sorted(ts) and max(r["players"] for r in series["rows"]) == 6
            assert any(r["p50"] and r["p50"] > 50 for r in series["rows"])
            charts.screenshot(path=str(tmp_path / "live-charts.png"))
            charts.close()

            before = page.request.get(url + "loadtest/report")
            assert before.status == 409, "no report may be served while the test runs"

            page.get_by_role("button", name="Stop").click()
            deadline = time.monotonic() + 60
            while page.request.get(url + "loadtest/report").status != 200:
                assert time.monotonic() < deadline, "the report of the stopped test never appeared"
                page.wait_for_timeout(500)
            page.get_by_role("tab", name="Download Data").click()
            with page.expect_download() as download_info:
                page.get_by_role("link", name=re.compile("loadtest HTML report")).click()
            report = tmp_path / "downloaded-report.html"
            download_info.value.save_as(report)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"screenshot of the page: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()

    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") or html.lstrip().lower().startswith("<!doctype html")
    assert "data:image/png;base64," in html and "webui-check" in html
    assert "<script src=" not in html and '<link rel="stylesheet" href=' not in html  # self-contained

    # The run folder is what a headless run writes, judged by the same gates.
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["replay"]["by_kind"]["jwt_alg_none"]["accepted"] > 0
    verdicts = {g["name"]: g["passed"] for g in summary["gates"]}
    assert verdicts == {"replay.accepted == 0": False, "tick.p50_hz >= 30": True}
    assert summary["passed"] is False and summary["generator"]["workers"] == 2
    assert (out / "junit.xml").exists() and (out / "data" / "ticks.csv").exists()
    assert html == (out / "report.html").read_text(encoding="utf-8")

    # One source of truth: the live summary, fed the same records, says what summary.json says.
    live = Live(out)
    live.add(RunFolder(out).records())
    live.settle(everything=True)
    final = summarise_folder(out)
    live_summary = live.summary(now=time.time() + 10)
    for section in ("tick", "ws", "rate_limit", "replay", "reconnect", "generator", "http"):
        assert live_summary[section] == final[section], section
    whole_run = extended_stats(live_summary, live.reduction)[0]["data"][0]
    assert whole_run["players"] == f"peak {final['tick']['peak_players']}"

    # Ctrl-C ends `loadtest run --web`, which judges the last test: a gate failed, so exit code 1.
    os.kill(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "webui-check: FAILED" in output and "FAIL  replay.accepted == 0" in output


def test_bucket_arriving_after_its_second_settled_still_counts_in_the_totals(tmp_path: Path) -> None:
    from loadtest.collectors.aggregates import Record

    live = Live(tmp_path)
    b = Bucket()
    b.counts["opened"] += 2
    record = Record("sessions", 1000, "w1", dict(b.counts), {})
    live.add([record])
    live.settle(now=1010)
    live.add([Record("sessions", 1000, "w2", {"opened": 3}, {})])  # a worker's late flush
    assert live.summary(now=1011)["ws"]["sessions_opened"] == 5
