"""Storm triggers as they fire: a command that fails or hangs is a StormError with its exit code or
timeout (a hung one is ended with every child it started), and header values read the environment
without ever showing a secret."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from loadtest.collectors.reconnects import ReconnectCollector
from loadtest.config.settings import Storm, StormTrigger
from loadtest.errors import StormError
from loadtest.probes.storms import TARGET_ENV, expand_env, fire_trigger


def command_storm(*argv: str, timeout: float = 10.0) -> Storm:
    return Storm(at=1, trigger=StormTrigger(kind="command", argv=argv, timeout=timeout))


def fire(storm: Storm, host: str = "http://127.0.0.1:9") -> ReconnectCollector:
    from loadtest.config.settings import PlayerSettings

    collector = ReconnectCollector()
    fire_trigger(storm, host, PlayerSettings(), collector)
    return collector


def test_a_command_gets_the_target_and_its_success_is_a_storm(tmp_path: Path) -> None:
    out = tmp_path / "target.txt"
    code = f"import os; open({str(out)!r}, 'w').write(os.environ[{TARGET_ENV!r}])"
    collector = fire(command_storm(sys.executable, "-c", code), host="http://127.0.0.1:4321")
    assert out.read_text() == "http://127.0.0.1:4321"
    assert collector.agg.bucket().counts["storms"] == 1


def test_a_command_that_fails_names_its_exit_code() -> None:
    with pytest.raises(StormError, match=r"exited with 7$"):
        fire(command_storm(sys.executable, "-c", "import sys; sys.exit(7)"))
    with pytest.raises(StormError, match="could not start"):
        fire(command_storm("/nonexistent/kubectl", "rollout", "restart"))


def test_a_hung_command_is_ended_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A parent that starts a child and both sleep: both must be gone after the timeout.
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(StormError, match=r"did not finish within 1 s"):
        fire(command_storm(sys.executable, "-c", code, timeout=1.0))
    for pid in map(int, pids.read_text().split()):
        for _ in range(50):  # bounded: 5 s at most for the kernel to reap
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                break  # killed, waiting for its parent (init) to reap it
            time.sleep(0.1)
        else:
            pytest.fail(f"process {pid} of the hung trigger is still running")


def test_header_values_read_the_environment_and_never_show_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORM_SECRET", "s3cr3t-value")
    assert expand_env("Bearer ${STORM_SECRET}") == "Bearer s3cr3t-value"
    assert expand_env("text/plain") == "text/plain"
    monkeypatch.delenv("STORM_SECRET")
    with pytest.raises(StormError) as info:
        expand_env("Bearer ${STORM_SECRET}")
    assert "STORM_SECRET" in str(info.value) and "s3cr3t" not in str(info.value)
