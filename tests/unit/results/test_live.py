"""The live view: the one-line progress and abort checks, from a run log that is still being
written, read through a tail that takes each line once."""

from __future__ import annotations

from pathlib import Path

from loadtest.collectors.aggregates import Aggregator, Record
from loadtest.results.gates import parse
from loadtest.results.live import SETTLE_SECONDS, Live
from loadtest.results.runfolder import RunFolder


def tick_record(second: int, connected: int, rate_hz: float, worker: str = "w1") -> Record:
    agg = Aggregator("ticks")
    agg.count("connected", connected, second=second)
    agg.observe("tick_rate_centihz", int(rate_hz * 100), second=second)
    (record,) = agg.drain(worker)
    return record


def append(folder: Path, *records: Record | str) -> None:
    path = RunFolder(folder).log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(r if isinstance(r, str) else r.to_json() + "\n" for r in records))


def settled(folder: Path, live: Live, now: float) -> Live:
    live.add(RunFolder(folder).tail().poll())
    live.settle(now=now)
    return live


def test_no_log_yet_is_no_news(tmp_path: Path) -> None:
    live = Live(tmp_path)
    assert RunFolder(tmp_path).tail().poll() == []
    assert "players     0" in live.status() and "tick p5        -" in live.status()


def test_status_counts_sessions_429s_and_errors_from_settled_seconds(tmp_path: Path) -> None:
    sessions = Record("sessions", 100, "w1", {"opened": 4, "unexpected": 1, "connect_failed:timeout": 2}, {})
    limits = Record("rate_limit", 100, "w1", {"429:/join": 3, "honoured:/join": 3}, {})
    append(tmp_path, sessions, limits, tick_record(100, 12, 59.5), tick_record(101, 3, 20.0))
    live = settled(tmp_path, Live(tmp_path), now=101 + SETTLE_SECONDS)  # second 101 is still open
    status = live.status()
    assert "players    12" in status and "59.5 Hz" in status
    assert "sessions      4" in status and "429s     3" in status and "errors     3" in status
    assert "generator" not in status


def test_a_half_written_line_waits_for_its_end_and_nothing_is_read_twice(tmp_path: Path) -> None:
    line = Record("sessions", 100, "w1", {"opened": 2}, {}).to_json() + "\n"
    append(tmp_path, line, line[:10])
    tail = RunFolder(tmp_path).tail()
    assert len(tail.poll()) == 1
    append(tmp_path, line[10:])
    assert len(tail.poll()) == 1
    assert tail.poll() == []


def test_garbage_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    append(tmp_path, "not json\n", '{"c": "sessions"}\n', "\n", Record("sessions", 1, "w", {"opened": 1}, {}))
    tail = RunFolder(tmp_path).tail()
    assert len(tail.poll()) == 1 and tail.unreadable == 2


def test_a_saturated_generator_is_said(tmp_path: Path) -> None:
    append(tmp_path, Record("generator", 5, "w1", {"saturated": 1, "seconds": 1}, {}))
    append(tmp_path, Record("generator", 6, "w1", {"saturated": 1, "seconds": 1}, {}))
    live = settled(tmp_path, Live(tmp_path), now=100)
    assert live.status().endswith("generator saturated 2s")


def test_workers_of_one_second_merge_and_a_late_share_still_counts(tmp_path: Path) -> None:
    append(tmp_path, tick_record(7, 5, 60, "w1"), tick_record(7, 6, 60, "w2"))
    live = settled(tmp_path, Live(tmp_path), now=20)
    assert "players    11" in live.status()
    live.add([Record("sessions", 7, "w3", {"opened": 3}, {})])  # a worker's last flush, after settling
    assert live.summary(now=30)["ws"]["sessions_opened"] == 3


def test_an_abort_gate_fails_on_its_worst_window_so_far(tmp_path: Path) -> None:
    gate = parse("tick.p5_hz >= 54", over=5.0, abort_on_fail=True)
    live = Live(tmp_path, [gate])
    append(tmp_path, *(tick_record(s, 10, 60.0) for s in range(100, 110)))
    settled(tmp_path, live, now=120)
    assert live.failing_gate(elapsed=10, now=120) is None
    append(tmp_path, *(tick_record(s, 10, 40.0) for s in range(110, 116)))
    settled(tmp_path, live, now=130)
    reason = live.failing_gate(elapsed=16, now=131)
    assert reason is not None and "tick.p5_hz >= 54 over 5s" in reason and "40" in reason
