"""The Colyseus test target: install it (once, cached outside the clone) and run it on loopback.

CI starts from a fresh clone, so nothing may be installed by hand: Node 22 (the Colyseus packages
need Node >= 22) and the pinned Colyseus packages are installed by tests/node_install.py from
``tests/targets/colyseus/package-lock.json`` into
``${XDG_CACHE_HOME:-~/.cache}/game-loadtest/colyseus-<hash of package.json and lock>``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests import node_install
from tests.node_install import NODE, NodeUnavailable

TARGET = Path(__file__).resolve().parent / "targets" / "colyseus"
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 20.0


#: npm or Node 22 cannot be had: the Colyseus tests cannot run (and must say so).
TargetUnavailable = NodeUnavailable


def cache_dir() -> Path:
    return node_install.cache_dir(TARGET, "colyseus")


def install() -> Path:
    """The cached install folder, installing it first when absent."""
    return node_install.install(TARGET, "colyseus", what="Colyseus for tests/targets", timeout=INSTALL_TIMEOUT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ColyseusServer:
    """``tests/targets/colyseus/server.mjs`` as a child process on a free loopback port."""

    def __init__(self, *, patch_ms: int = 50, seat_seconds: float = 2, reconnect_seconds: float = 10) -> None:
        self.env = {
            "PATCH_MS": str(patch_ms),
            "SEAT_SECONDS": str(seat_seconds),
            "RECONNECT_SECONDS": str(reconnect_seconds),
        }
        self.patch_ms = patch_ms
        self.seat_seconds = seat_seconds
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ColyseusServer:
        folder = install()
        # ESM resolves packages from the script's folder: run a copy beside node_modules.
        script = folder / "server.mjs"
        shutil.copy2(TARGET / "server.mjs", script)
        self.port = free_port()
        self.log = folder / f"server-{self.port}.log"
        env = {**os.environ, **self.env, "JWT_SECRET": secrets.token_urlsafe(32)}
        with open(self.log, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [str(folder / NODE), str(script), str(self.port)],
                cwd=folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetUnavailable(f"the Colyseus target exited at start:\n{self.log.read_text()[-2000:]}")
            if "listening" in self.log.read_text():
                return self
            time.sleep(0.1)
        self.stop()
        raise TargetUnavailable(f"the Colyseus target did not listen within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
