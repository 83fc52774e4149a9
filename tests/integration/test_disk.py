"""Disk trouble is a one-line error and "not carried out", never a traceback or a verdict on data
that could not be kept."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.locust_run import ROOT

LOADTEST = [sys.executable, "-m", "loadtest"]


def loadtest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOADTEST, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 KiB tmpfs: room for a run folder's first files, not for its log."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_out_folder_that_cannot_be_written_exits_3_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    done = loadtest("run", "smoke", "--out", str(tmp_path / "file" / "run"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot write the run folder" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_stops_the_run_not_carried_out(small_disk: Path) -> None:
    done = loadtest("run", "smoke", "--duration", "30s", "--out", str(small_disk / "run"), timeout=150)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output
    assert "No space left on device" in output and "PASSED" not in output
    assert "Traceback" not in done.stdout + done.stderr
    # It stopped when the log could not grow, not at the end of its 30 s.
    assert "[   30s/30s]" not in output
    assert not list(small_disk.rglob("*.tmp")), "no temp file is left looking like a result"
