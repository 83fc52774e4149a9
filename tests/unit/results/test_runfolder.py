"""The run folder's one reader: torn last lines are what killed runs leave, anything else unreadable
is counted; seconds come out in time order, merged across workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.collectors.aggregates import Aggregator
from loadtest.results.runfolder import RunFolder, RunFolderError, RunLog, prepare, write_json


def _log(folder: Path) -> RunLog:
    log = RunLog(folder)
    for worker, opened in (("w1", 2), ("w2", 5)):
        agg = Aggregator("sessions")
        for second in (1002, 1000, 1001):
            agg.count("opened", opened, second=second)
        log.write(agg.drain(worker))
    return log


def test_seconds_come_in_time_order_merged_across_workers(tmp_path: Path) -> None:
    _log(tmp_path / "run").close()
    seconds = list(RunFolder(tmp_path / "run").seconds())
    assert [s.second for s in seconds] == [1000, 1001, 1002]
    assert {s.buckets["sessions"].counts["opened"] for s in seconds} == {7}


def test_a_torn_last_line_is_no_error_but_a_broken_line_inside_is_counted(tmp_path: Path) -> None:
    _log(tmp_path / "run").close()
    path = tmp_path / "run" / "data" / "aggregates.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"c":"sessions","s":1000,"w":"w3","n":{"opened":\n' + "".join(lines[1:]) + '{"c":"ses')
    index = RunFolder(tmp_path / "run").index()
    assert index.unreadable == 1 and index.torn_last_line
    assert sum(len(v) for per in index.offsets.values() for v in per.values()) == len(lines)


def test_a_folder_that_cannot_be_made_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError) as caught:
        prepare(tmp_path / "file" / "run")
    assert str(caught.value).startswith(f"cannot write the run folder {tmp_path / 'file' / 'run'}: ")
    assert "\n" not in str(caught.value)


def test_json_is_strict_and_atomic(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"nan": float("nan")})
    assert not list(tmp_path.iterdir()), "nothing, not even a temp file, is left by a refused write"
    write_json(tmp_path / "x.json", {"a": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}


def test_tail_gives_only_what_was_appended_and_keeps_a_line_being_written(tmp_path: Path) -> None:
    log = _log(tmp_path / "run")
    tail = RunFolder(tmp_path / "run").tail()
    assert len(tail.poll()) == 6 and tail.poll() == []
    with open(tmp_path / "run" / "data" / "aggregates.jsonl", "a") as fh:
        fh.write('{"c":"sessions","s":1003,"w":"w1","n":{"opened":1},')
        fh.flush()
        assert tail.poll() == []
        fh.write('"h":{}}\n')
    assert [r.second for r in tail.poll()] == [1003]
    log.close()
