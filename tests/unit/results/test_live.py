"""LiveLog: the one-line progress read from a run log that is still being written."""

from __future__ import annotations

from pathlib import Path

from loadtest.collectors.aggregates import Aggregator, Record
from loadtest.results.live import LiveLog


def tick_record(second: int, connected: int, rate_hz: float, worker: str = "w1") -> Record:
    agg = Aggregator("ticks")
    agg.count("connected", connected, second=second)
    agg.observe("tick_rate_centihz", int(rate_hz * 100), second=second)
    (record,) = agg.drain(worker)
    return record


def append(live: LiveLog, *lines: str) -> None:
    live.path.parent.mkdir(parents=True, exist_ok=True)
    with open(live.path, "a", encoding="utf-8") as fh:
        fh.write("".join(lines))


def test_no_log_yet_is_no_news(tmp_path: Path) -> None:
    live = LiveLog(tmp_path)
    assert live.poll() == 0
    assert "players     0" in live.status() and "tick p5        -" in live.status()


def test_status_counts_sessions_429s_and_errors_and_shows_the_settled_second(tmp_path: Path) -> None:
    live = LiveLog(tmp_path)
    sessions = Record("sessions", 100, "w1", {"opened": 4, "unexpected": 1, "connect_failed:timeout": 2}, {})
    limits = Record("rate_limit", 100, "w1", {"429:/join": 3, "honoured": 3}, {})
    append(live, *(r.to_json() + "\n" for r in (sessions, limits, tick_record(100, 12, 59.5))))
    append(live, tick_record(101, 3, 20.0).to_json() + "\n")  # the newest second may still be filling up
    assert live.poll() == 4
    status = live.status()
    assert "players    12" in status and "59.5 Hz" in status
    assert "sessions      4" in status and "429s     3" in status and "errors     3" in status
    assert "generator" not in status


def test_a_half_written_line_waits_for_its_end_and_nothing_is_read_twice(tmp_path: Path) -> None:
    live = LiveLog(tmp_path)
    line = Record("sessions", 100, "w1", {"opened": 2}, {}).to_json() + "\n"
    append(live, line, line[:10])
    assert live.poll() == 1
    append(live, line[10:])
    assert live.poll() == 1
    assert live.poll() == 0
    assert live.totals["sessions"]["opened"] == 4


def test_garbage_lines_are_skipped(tmp_path: Path) -> None:
    live = LiveLog(tmp_path)
    append(
        live, "not json\n", '{"c": "sessions"}\n', "\n", Record("sessions", 1, "w", {"opened": 1}, {}).to_json() + "\n"
    )
    assert live.poll() == 1


def test_a_saturated_generator_is_said(tmp_path: Path) -> None:
    live = LiveLog(tmp_path)
    append(live, Record("generator", 5, "w1", {"saturated": 2}, {}).to_json() + "\n")
    live.poll()
    assert live.status().endswith("generator saturated 2s")


def test_workers_of_one_second_merge(tmp_path: Path) -> None:
    live = LiveLog(tmp_path)
    append(live, *(r.to_json() + "\n" for r in (tick_record(7, 5, 60, "w1"), tick_record(7, 6, 60, "w2"))))
    live.poll()
    assert "players    11" in live.status()
