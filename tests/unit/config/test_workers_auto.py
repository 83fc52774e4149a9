"""``load.workers = "auto"`` plans worker processes from the peak sessions and the cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.config.scenario import SESSIONS_PER_WORKER, ScenarioError, load, workers_for


def test_workers_for_counts_sessions_per_worker_up_to_the_cores() -> None:
    assert workers_for(1, cores=8) == 1
    assert workers_for(SESSIONS_PER_WORKER, cores=8) == 1
    assert workers_for(SESSIONS_PER_WORKER + 1, cores=8) == 2
    assert workers_for(5 * SESSIONS_PER_WORKER, cores=2) == 2


def _scenario(tmp_path: Path, load_table: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(f'[scenario]\nname = "t"\nduration = "10s"\n[load]\n{load_table}\n', encoding="utf-8")
    return path


def test_auto_uses_the_peak_of_the_stages(tmp_path: Path) -> None:
    table = 'workers = "auto"\nusers = 10\n[[load.stages]]\nduration = "5s"\nusers = 2500'
    scenario = load(_scenario(tmp_path, table))
    assert scenario.workers == workers_for(2500)


def test_a_word_other_than_auto_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"load\.workers"):
        load(_scenario(tmp_path, 'workers = "many"'))
