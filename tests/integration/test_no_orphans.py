"""`loadtest run` killed with SIGKILL leaves nothing behind, and no child shows a secret to `ps`.

The run's children (the embedded backend, its game servers, Locust and its worker processes) are
found with psutil while the run is going; after the kill every one of them must be gone.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.locust_run import ROOT

pytestmark = pytest.mark.slow

SCENARIO = """
[scenario]
name = "orphans"
duration = "120s"

[load]
users = 4
spawn_rate = 4
workers = {workers}

[player]
session_length = "5s"
"""
SECRET_VARIABLES = ("LOADTEST_ADMIN_TOKEN", "LOADTEST_JWT_SECRET", "LOADTEST_INTERNAL_KEY")


def _family(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def _names(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            out.append(" ".join(p.cmdline()[1:4]))
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_of_loadtest_run_leaves_no_process_and_no_secret_on_a_command_line(tmp_path: Path, workers: int):
    scenario = tmp_path / "orphans.toml"
    scenario.write_text(SCENARIO.format(workers=workers), encoding="utf-8")
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "loadtest", "run", str(scenario), "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = psutil.Process(run.pid)
    family: list[psutil.Process] = []
    try:

        def everyone_started() -> bool:
            lines = _names(_family(root))
            return (
                any("loadtest serve" in line for line in lines)
                and any("loadtest.backend.gameserver" in line for line in lines)
                and sum("locust" in line for line in lines) >= (1 if workers == 1 else 1 + workers)
            )

        assert _wait_for(everyone_started, 60), _names(_family(root))
        family = _family(root)
        # Every secret a child holds (by environment, readable by this user only) ...
        held = set()
        for child in family:
            env = child.environ()
            held.update(env[name] for name in SECRET_VARIABLES if env.get(name))
        assert len(held) >= 3, "the backend's admin token and signing key, the game servers' key"
        # ... is on no command line, which every local user can read.
        for child in [root, *family]:
            cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().decode(errors="replace")
            for secret in held:
                assert secret not in cmdline, f"a secret on the command line of {_names([child])}"
            assert "--jwt-secret" not in cmdline and "--admin-token" not in cmdline

        run.send_signal(signal.SIGKILL)
        run.wait(10)
        _, alive = psutil.wait_procs(family, timeout=30)
        assert alive == [], f"left running after SIGKILL: {_names(alive)}"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
        for proc in family:  # only the processes this test started, by their ids
            with contextlib.suppress(psutil.Error):
                proc.kill()
