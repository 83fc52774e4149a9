"""``load.workers = "auto"`` (and ``--workers auto``): worker processes chosen from the cores and
the planned sessions, resolved when the scenario is read, and kept in the run folder so a later
``loadtest report`` on another machine judges the run by the workers it had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.cli import run as run_module
from loadtest.cli.main import build_parser, main
from loadtest.config import scenario as scenario_module
from loadtest.config.scenario import SESSIONS_PER_WORKER, ScenarioError, load, parse_override, workers_for

MINIMAL = '[scenario]\nduration = "10s"\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def test_one_worker_per_planned_500_sessions_at_most_one_per_core_but_one() -> None:
    assert workers_for(1, cores=8) == 1
    assert workers_for(SESSIONS_PER_WORKER, cores=8) == 1
    assert workers_for(SESSIONS_PER_WORKER + 1, cores=8) == 2
    assert workers_for(20 * SESSIONS_PER_WORKER, cores=8) == 7, "a core is left for the master and the backend"
    assert workers_for(5 * SESSIONS_PER_WORKER, cores=2) == 1, "two cores: one process, no master"
    assert workers_for(5 * SESSIONS_PER_WORKER, cores=1) == 1
    assert workers_for(10**6, cores=256) == 64, "the field's own upper bound"


@pytest.mark.parametrize("how", ["file", "set"])
def test_auto_is_resolved_from_the_cores_when_the_scenario_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setattr(scenario_module, "usable_cores", lambda: 8)
    body = MINIMAL + "[load]\nusers = 1200\n" + ('workers = "auto"\n' if how == "file" else "")
    overrides = [parse_override("load.workers=auto")] if how == "set" else []
    scenario = load(_write(tmp_path, body), overrides)
    assert (scenario.workers, scenario.workers_auto) == (3, True)
    assert load(_write(tmp_path, MINIMAL + "[load]\nworkers = 2\n")).workers_auto is False


def test_auto_plans_with_the_largest_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario_module, "usable_cores", lambda: 4)
    body = MINIMAL + '[load]\nworkers = "auto"\n[[load.stages]]\nduration = "5s"\nusers = 1100\n'
    body += '[[load.stages]]\nduration = "5s"\nusers = 10\n'
    assert load(_write(tmp_path, body)).workers == 3


@pytest.mark.parametrize(
    ("value", "words"),
    [('"many"', "'many' is not a whole number or \"auto\""), ("0", "must be >= 1, got 0"), ("2.5", "not a whole")],
)
def test_anything_else_is_refused_in_one_line_naming_the_key(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load(_write(tmp_path, MINIMAL + f"[load]\nworkers = {value}\n"))
    assert str(info.value).startswith(f"{tmp_path / 'scenario.toml'}: load.workers: ")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_the_run_flag_takes_auto_and_says_the_rule() -> None:
    assert build_parser().parse_args(["run", "smoke", "--workers", "auto"]).workers == "auto"
    assert build_parser().parse_args(["run", "smoke", "--workers", "3"]).workers == 3
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    help_text = next(a for a in run._actions if "--workers" in a.option_strings).help or ""
    assert '"auto"' in help_text and "cores - 1" in help_text and "1..64" in help_text


def test_the_run_folder_keeps_the_count_auto_chose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario_module, "usable_cores", lambda: 8)
    started: list[int] = []
    monkeypatch.setattr(run_module, "run", lambda scenario, **_: started.append(scenario.workers) or 0)
    path = _write(tmp_path, MINIMAL + "[load]\nusers = 1600\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as done:
        main(["run", str(path), "--workers", "auto", "--out", str(out)])
    assert done.value.code == 0
    assert started == [4]
    overrides = json.loads((out / "overrides.json").read_text())
    assert overrides[-1] == ["load.workers", 4], overrides
    monkeypatch.setattr(scenario_module, "usable_cores", lambda: 2)  # `loadtest report` elsewhere
    again = load(out / "scenario.toml", [tuple(o) for o in overrides])
    assert (again.workers, again.workers_auto) == (4, False)
