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

from loadtest.backend.lifeline import die_with_parent
from loadtest.config.settings import ADMIN_TOKEN_ENV, JWT_SECRET_ENV
from loadtest.errors import NotCarriedOutError

READY = re.compile(r"listening on (\S+)")
#: Options whose value is a secret: given to :class:`BackendProcess` in ``args``, they are sent
#: by environment instead.
SECRET_OPTIONS = {"--jwt-secret": "jwt_secret", "--admin-token": "admin_token"}
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
        jwt_secret: str | None = None,
    ) -> None:
        self.host = host
        self.admin_token = secrets.token_urlsafe(24)
        #: The signing key; None lets the backend draw a random one (unless ``args`` names one).
        self.jwt_secret = jwt_secret
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
        """The command line, which any local user can read in ``/proc/PID/cmdline``: no secret.

        The admin token and the signing key travel in the environment (readable by this user
        only); a ``--jwt-secret`` or ``--admin-token`` among ``args`` is moved there too.
        """
        cmd = [sys.executable, "-m", "loadtest", "serve", "--host", self.host, "--port", "0"]
        for defect in self.defects:
            cmd += ["--defect", defect]
        return cmd + _public_args(self.args)[0]

    def environment(self) -> dict[str, str]:
        """The child's environment: ours, plus the secrets the command line must not carry."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", ADMIN_TOKEN_ENV: self.admin_token}
        env.pop(JWT_SECRET_ENV, None)  # a secret of some other target must not become ours
        secrets_ = _public_args(self.args)[1]
        if "jwt_secret" in secrets_:
            env[JWT_SECRET_ENV] = secrets_["jwt_secret"]
        if self.jwt_secret is not None:
            env[JWT_SECRET_ENV] = self.jwt_secret
        if "admin_token" in secrets_:
            self.admin_token = env[ADMIN_TOKEN_ENV] = secrets_["admin_token"]
        return env

    def start(self) -> BackendProcess:
        env = self.environment()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command(),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            # A parent killed with SIGKILL cannot stop us: the kernel does, and the backend stops
            # its game servers on SIGTERM as on Ctrl-C.
            preexec_fn=die_with_parent(signal.SIGTERM),
            # Its own session: a terminal's Ctrl-C (SIGINT to the whole foreground group) reaches
            # only our parent, which stops the load first and this backend last, so players are
            # never cut off by our own shutdown and counted as the target's drops.
            start_new_session=True,
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


def _public_args(args: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """``args`` without its secret options, and those secrets by name."""
    public: list[str] = []
    found: dict[str, str] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        flag, eq, value = arg.partition("=")
        if flag in SECRET_OPTIONS:
            if not eq:
                i += 1
                value = items[i] if i < len(items) else ""
            found[SECRET_OPTIONS[flag]] = value
        else:
            public.append(arg)
        i += 1
    return public, found
