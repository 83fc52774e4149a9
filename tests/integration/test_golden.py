"""The golden run folder: a real recorded run (tests/golden/scenario.toml, two workers, storms on
both sides, replay, CORS and rate-limit probes) must give the same numbers with today's code as
with the code that recorded it. A refactor of the results pipeline that changes a number fails here.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
#: One rebuild of the golden folder serves every test here: keep them in one test process.
pytestmark = pytest.mark.xdist_group("golden")
#: Keys that name where the run was made from or the document's version, not what it measured.
NOT_NUMBERS = {"scenario.file", "schema_version"}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): value}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden") / "run"
    shutil.copytree(GOLDEN / "run", folder)
    # As the run left it: `loadtest report` keeps the recorded verdict's completeness.
    shutil.copyfile(GOLDEN / "expected" / "summary.json", folder / "summary.json")
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert (folder / "summary.json").exists(), proc.stdout + proc.stderr
    return folder


def test_summary_numbers_are_those_the_recording_code_wrote(rebuilt: Path) -> None:
    expected = _flat(json.loads((GOLDEN / "expected" / "summary.json").read_text()))
    actual = _flat(json.loads((rebuilt / "summary.json").read_text()))
    differences = {
        key: (value, actual.get(key, "<missing>"))
        for key, value in expected.items()
        if key not in NOT_NUMBERS and actual.get(key, "<missing>") != value
    }
    assert not differences, f"{len(differences)} numbers changed (expected, now): {differences}"


@pytest.mark.parametrize("name", sorted(p.stem for p in (GOLDEN / "expected").glob("*.csv")))
def test_per_second_tables_are_unchanged(rebuilt: Path, name: str) -> None:
    expected = pd.read_csv(GOLDEN / "expected" / f"{name}.csv")
    actual = pd.read_csv(rebuilt / "data" / f"{name}.csv")
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    for column in expected.columns:
        for i, (a, e) in enumerate(zip(actual[column], expected[column], strict=True)):
            same = (isinstance(a, float) and isinstance(e, float) and math.isnan(a) and math.isnan(e)) or a == e
            assert same, f"{name}.csv row {i} column {column}: {e!r} became {a!r}"
