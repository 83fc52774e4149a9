"""The report's first screen and its charts' honesty: the verdict lines, gaps, the tick band, and
the server's own tick gauge against the players' rate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from loadtest.results import report
from loadtest.results.findings import findings, server_client_gap
from loadtest.results.runfolder import RunFolder, tick_gauge_series


def _summary(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "integrity": {"carried_out": True, "reasons": [], "notes": [], "planned_users": 20, "peak_connected": 20},
        "tick": {
            "nominal_hz": 60.0,
            "threshold_hz": 54.0,
            "p50_hz": 59.9,
            "p5_hz": 59.0,
            "min_hz": 57.0,
            "ticks_received": 1000,
            "missed_ticks": 0,
            "degradation": None,
            "peak_players": 20,
        },
        "replay": {"attempts": 0, "by_kind": {}},
        "rate_limit": {"probe": None, "responses_429_total": 0, "without_retry_after": {}},
        "reconnect": {"dropped": 0, "recovered": 0},
        "http": {"/join": {"count": 10, "failures": 0, "p95_ms": 3.0}},
        "generator": {"workers": 1, "cpu_max_pct": 20.0, "loop_lag_p99_ms": 2.0, "seconds_saturated": 0},
    }
    base.update(sections)
    return base


def _marks(summary: dict[str, Any]) -> dict[str, str]:
    return {c["concern"]: c["label"] for c in report.concerns(summary)}


def test_every_concern_has_a_line_with_a_mark_in_words() -> None:
    marks = _marks(_summary())
    assert marks == {
        "Run integrity": "PASS",
        "Tick rate": "PASS",
        "Replay and forgery": "NOT CHECKED",
        "Rate limits": "NOT CHECKED",
        "Reconnects": "NOT CHECKED",
        "HTTP steps": "PASS",
        "Load generator": "PASS",
    }


def test_the_marks_follow_what_went_wrong() -> None:
    bad = _summary(
        integrity={"carried_out": False, "reasons": ["load not reached: at most 3 of 20"], "notes": []},
        tick={**_summary()["tick"], "degradation": {"onset_second": 1_800_000_000, "players": 12, "p5_hz": 40.0}},
        replay={"attempts": 6, "accepted": 2, "by_kind": {"ticket_reuse": {"attempts": 6, "accepted": 2}}},
        rate_limit={
            "probe": {"endpoint": "/join", "enforced": False, "steps": [{"offered_rate": 50.0}]},
            "responses_429_total": 0,
            "without_retry_after": {},
        },
        reconnect={"dropped": 10, "recovered": 7, "gave_up": 3, "storms": 1},
        generator={"workers": 1, "seconds_saturated": 4},
    )
    lines = {c["concern"]: c for c in report.concerns(bad)}
    assert {k: v["label"] for k, v in lines.items()} == {
        "Run integrity": "FAIL",
        "Tick rate": "FAIL",
        "Replay and forgery": "FAIL",
        "Rate limits": "FAIL",
        "Reconnects": "WARN",
        "HTTP steps": "PASS",
        "Load generator": "WARN",
    }
    assert "load not reached" in lines["Run integrity"]["text"]
    assert "12 players" in lines["Tick rate"]["text"] and "ticket_reuse" in lines["Replay and forgery"]["text"]
    assert "7 of 10" in lines["Reconnects"]["text"] and "3 gave up" in lines["Reconnects"]["text"]


def test_outcome_reason_names_the_failed_gate_and_not_the_passed_one() -> None:
    summary = _summary(
        gates=[
            {"name": "replay.accepted == 0", "passed": False, "value": 7},
            {"name": "tick.p5_hz >= 40", "passed": True, "value": 59.0},
        ]
    )
    header = report._header(summary, None, 0)
    reason = report.outcome_reason(summary, header)
    assert reason == "1 of 2 gate(s) failed: replay.accepted == 0 (value 7)."


def test_gate_note_drops_what_the_value_column_already_says() -> None:
    assert (
        report._gate_words({"metric": "tick.p5_hz", "message": "tick.p5_hz = 59.67 (worst 10s window): passed"})
        == "worst 10s window"
    )
    assert report._gate_words({"metric": "replay.accepted", "message": "replay.accepted = 7: FAILED"}) == ""
    assert (
        report._gate_words({"metric": "x", "message": "x is missing from the summary"})
        == "x is missing from the summary"
    )


def test_keys_are_labelled_in_words() -> None:
    assert report.label("retry_after_honoured_ratio") == "Retry-After honoured (share)"
    assert report.label("some_new_p99_ms") == "some new p99 (ms)"
    assert "_" not in report.label("whatever_else_here")


def test_target_metrics_list_only_counters_that_moved_grouped_by_family() -> None:
    summary = {
        "target_metrics": {
            "scraped": True,
            "scrapes": 3,
            "delta": {
                'req_total{endpoint="/join"}': 5.0,
                'req_total{endpoint="/x"}': 0.0,
                "ticks_total": 100.0,
                "idle_total": 0.0,
            },
        }
    }
    target = report._target_metrics(summary)
    assert target is not None and target["unchanged"] == 2
    assert [(g["family"], g["rows"]) for g in target["groups"]] == [
        ("req_total", [('endpoint="/join"', "5")]),
        ("ticks_total", [("(no labels)", "100")]),
    ]


def test_a_second_without_data_is_a_gap_not_a_joined_line() -> None:
    gapped = report._gapped(pd.Series([10.0, 12.0], index=pd.Index([0, 3])), 5)
    assert list(gapped.index) == [0, 1, 2, 3, 4]
    assert gapped[0] == 10 and gapped[3] == 12 and all(math.isnan(gapped[i]) for i in (1, 2, 4))


def test_tick_axis_frames_nominal_and_threshold_not_zero() -> None:
    ax = Figure().add_subplot()
    report._tick_axis(ax, [59.9, 60.0, 58.0, float("nan")], 60.0, 54.0)
    low, high = ax.get_ylim()
    assert 45 < low < 54 and 60 < high < 65
    report._tick_axis(ax, [20.0, 60.0], 60.0, 54.0)  # a collapse stays on the chart
    assert ax.get_ylim()[0] < 20


def _gauge_summary(server: list[float], client: float) -> dict[str, Any]:
    return {
        "tick": {"p50_hz": client, "nominal_hz": 60.0},
        "target_metrics": {"tick_gauge": [{"at_s": 5.0 * i, "hz": hz} for i, hz in enumerate(server)]},
    }


def test_server_that_reports_more_than_players_get_is_a_finding() -> None:
    summary = _gauge_summary([60.0, 60.0, 59.9, 60.0], client=45.0)
    assert server_client_gap(summary) == (60.0, 45.0, 4)
    assert any("the server's metric hides what players get" in f for f in findings(summary))
    reverse = _gauge_summary([40.0, 41.0, 40.0], client=60.0)
    assert any("the gauge is wrong" in f for f in findings(reverse))


def test_agreement_or_one_odd_scrape_is_no_finding() -> None:
    assert server_client_gap(_gauge_summary([60.0, 59.0, 60.0], client=59.5)) is None
    assert server_client_gap(_gauge_summary([60.0, 30.0, 60.0], client=59.5)) is None  # one scrape is not persistent
    assert server_client_gap(_gauge_summary([30.0], client=59.5)) is None


def test_tick_gauge_series_reads_the_mean_stat_and_skips_scrapes_without_a_room() -> None:
    scrapes = [
        {"t": 100.0, "samples": {"ticks_total": 0.0}},
        {
            "t": 105.0,
            "samples": {
                'game_tick_rate_hz{game_server="0",stat="min"}': 50.0,
                'game_tick_rate_hz{game_server="0",stat="mean"}': 58.0,
                'game_tick_rate_hz{game_server="1",stat="mean"}': 60.0,
            },
        },
        {"t": 110.0, "samples": {"server_tick_rate": 30.0}},
    ]
    assert tick_gauge_series(scrapes, 100.0) == [{"at_s": 5.0, "hz": 59.0}, {"at_s": 10.0, "hz": 30.0}]


def test_a_folder_without_overrides_still_gives_its_scenario(tmp_path: Path) -> None:
    toml = '[scenario]\nname = "bare"\nduration = "10s"\n[load]\nusers = 3\n'
    (tmp_path / "scenario.toml").write_text(toml, encoding="utf-8")
    assert RunFolder(tmp_path).scenario().users == 3
    (tmp_path / "overrides.json").write_text(json.dumps([["load.users", 5]]), encoding="utf-8")
    assert RunFolder(tmp_path).scenario().users == 5


def test_charts_have_a_caption_saying_what_good_looks_like() -> None:
    frames = {
        "ticks": pd.DataFrame(
            {
                "p50_hz": [60.0, 59.0],
                "p5_hz": [59.0, 58.0],
                "min_hz": [58.0, 57.0],
                "players": [4, 4],
                "saturated": [False, False],
            },
            index=pd.Index([0, 4], name="t"),
        ),
    }
    chart = report._chart_tick_rate(_summary(), frames, report._Axis(5), 0, 5)
    assert chart is not None and chart.good and np.isfinite(len(chart.png))


GOLDEN_RUN = Path(__file__).resolve().parents[2] / "integration" / "golden" / "run"


def test_live_series_and_integrity_of_the_golden_run() -> None:
    """The live charts' rows and the Integrity tab's verdict, from the recorded golden run."""
    import time

    from loadtest.results.live import Live

    live = Live(GOLDEN_RUN)
    live.add(RunFolder(GOLDEN_RUN).records())
    live.settle(everything=True)
    rows = list(live.series)
    assert [r["second"] for r in rows] == sorted(r["second"] for r in rows)
    assert max(r["players"] for r in rows) == 16
    assert sum(r["dropped"] for r in rows) == 24  # both storms' drops, as summary.json counts them
    assert sum(r["attempts"] for r in rows) == 24
    assert any(r["p50"] is None for r in rows) and any(r["p50"] and r["p50"] > 59 for r in rows)
    integrity = live.integrity(RunFolder(GOLDEN_RUN).scenario(), now=time.time() + 10)
    assert integrity["carried_out"] is True and [s["carried_out"] for s in integrity["storms"]] == [True, True]
