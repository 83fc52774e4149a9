"""Run the reference backend as a separate process, the way the harness and the tests use it.

``loadtest serve --port 0`` picks a free port and prints the URL it listens on; this wrapper waits
for that line, exposes the URL and admin token, and on :meth:`BackendProcess.stop` stops the
process it started (by its id) and waits for it, game servers included.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from types import TracebackType

from loadtest.errors import NotCarriedOutError

READY = re.compile(r"listening on (\S+)")
STOP_TIMEOUT = 15.0


class BackendStartError(NotCarriedOutError):
    """Raised when the backend process exits or stays silent instead of reporting its URL."""


class BackendProcess:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        defects: Iterable[str] = (),
        args: Iterable[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.admin_token = secrets.token_urlsafe(24)
        self.defects = tuple(defects)
        self.args = tuple(args)
        self.startup_timeout = startup_timeout
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "loadtest", "serve", "--host", self.host, "--port", "0"]
        # One argument with "=": a generated token starts with "-" one time in 64, and argparse
        # would take a separate "-abc..." for an option and refuse to start.
        cmd += [f"--admin-token={self.admin_token}"]
        for defect in self.defects:
            cmd += ["--defect", defect]
        return cmd + list(self.args)

    def start(self) -> BackendProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command(), stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env
        )
        threading.Thread(target=self._read_stdout, name="backend-stdout", daemon=True).start()
        try:
            while True:
                line = self._lines.get(timeout=self.startup_timeout)
                if line is None:
                    raise BackendStartError(f"backend exited before it was ready:\n{self.stderr_text()}")
                match = READY.search(line)
                if match:
                    self.url = match.group(1)
                    return self
        except queue.Empty:
            detail = self.stderr_text()
            self.stop()
            raise BackendStartError(
                f"backend did not report its URL within {self.startup_timeout:.0f} s:\n{detail}"
            ) from None
        except BaseException:
            self.stop()
            raise

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self._lines.put(line)
        self._lines.put(None)

    def stderr_text(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def stop(self) -> int | None:
        """Ask the backend to stop (SIGTERM), wait, and kill it if it will not; return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._stderr.close()
        return self.process.returncode

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
