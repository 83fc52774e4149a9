"""A plain (non-editable) install carries its bundled scenarios: `loadtest scenarios` and
`loadtest run smoke` work from any directory, and an install without them is an error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.locust_run import ROOT

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, not ignored), links left out: what a
    fresh clone builds, without build/ litter in the worktree other tests run from."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.split(b"\0")
    for name in (n.decode() for n in listed if n):
        src = ROOT / name
        if src.is_symlink() or not src.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    return dest


def test_a_plain_install_runs_a_bundled_scenario_by_name_from_an_empty_directory(tmp_path: Path) -> None:
    src, site, empty = _source_copy(tmp_path / "src"), tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {**os.environ, "PYTHONPATH": str(site)}  # ahead of the venv's editable install of the checkout

    def loadtest(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "loadtest", *args], cwd=empty, env=env, capture_output=True, text=True, timeout=90
        )

    where = subprocess.run(
        [sys.executable, "-c", "import loadtest; print(loadtest.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), f"the installed copy is not the one running: {where}"

    listing = loadtest("scenarios")
    assert listing.returncode == 0, listing.stderr
    names = {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}
    assert {"smoke", "reconnect-storm", "replay-attack"} <= names

    run = loadtest("run", "smoke", "--duration", "6s", "--users", "2", "--out", "out")
    summary = json.loads((empty / "out" / "summary.json").read_text())
    # Its verdict is the smoke scenario's business; here it must have been a real run of it.
    assert run.returncode in (0, 1, 3), run.stderr[-2000:]
    assert summary["scenario"]["name"] == "smoke"
    assert summary["ws"]["sessions_opened"] >= 2, run.stdout[-2000:]
    assert (empty / "out" / "report.html").exists()

    # The same install without its scenarios is broken, and says so in one line with exit 2.
    shutil.rmtree(site / "loadtest" / "scenarios")
    broken = loadtest("scenarios")
    assert broken.returncode == 2 and broken.stdout == ""
    assert len(broken.stderr.strip().splitlines()) == 1 and "no bundled scenarios" in broken.stderr
    unknown = loadtest("run", "smoke")
    assert unknown.returncode == 2 and "no scenario file 'smoke'" in unknown.stderr
