"""Run real, short Locust processes against a target and read what the harness wrote.

Locust is always a child process: importing it here would gevent-patch the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"


@dataclass
class LocustResult:
    returncode: int
    stdout: str
    stderr: str
    out_dir: Path

    @property
    def summary(self) -> dict:
        path = self.out_dir / "summary.json"
        assert path.exists(), f"no summary.json; stderr:\n{self.stderr[-3000:]}"
        return json.loads(path.read_text())

    def target_delta(self, key: str) -> float:
        return self.summary["target_metrics"]["delta"].get(key, 0.0)


def locust_command(
    host: str,
    out_dir: Path,
    *,
    users: int,
    spawn_rate: float,
    run_time: str,
    locustfile: Path = LOCUSTFILE,
    extra: tuple[str, ...] = (),
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        run_time,
        "--host",
        host,
        "--lt-out",
        str(out_dir),
        "--only-summary",
        *extra,
        *(_master_port() if "--processes" in extra else ()),
    ]


def _master_port() -> tuple[str, ...]:
    """Local workers reach their master on a port free for this run, so runs side by side never meet."""
    from loadtest.cli.run import free_loopback_port

    port = str(free_loopback_port())
    bind = ("--master-bind-host", "127.0.0.1", "--master-bind-port", port)
    return (*bind, "--master-host", "127.0.0.1", "--master-port", port)


def run_locust(
    host: str, out_dir: Path, *, timeout: float = 180, env: dict[str, str] | None = None, **kwargs: Any
) -> LocustResult:
    """Run Locust to completion; ``kwargs`` are :func:`locust_command`'s."""
    cmd = locust_command(host, out_dir, **kwargs)
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}
    )
    return LocustResult(proc.returncode, proc.stdout, proc.stderr, out_dir)


def assert_clean(result: LocustResult) -> None:
    """No traceback anywhere: every bad reply must have become a counted error."""
    assert "Traceback" not in result.stderr, result.stderr[-4000:]


class RunningLocust:
    """A Locust run in the background, for tests that act on the target while it runs."""

    def __init__(self, host: str, out_dir: Path, env: dict[str, str] | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.out_dir = out_dir
        self.proc = subprocess.Popen(
            locust_command(host, out_dir, **kwargs),
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def stop(self, timeout: float = 60) -> LocustResult:
        """SIGTERM (Locust stops gracefully and the harness writes its summary), then wait, by pid."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate(timeout=10)
        return LocustResult(self.proc.returncode, stdout, stderr, self.out_dir)

    def wait(self, timeout: float = 120) -> LocustResult:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        return LocustResult(self.proc.returncode, stdout, stderr, self.out_dir)
