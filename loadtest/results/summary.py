"""The run's summary: the numbers every report, gate and test reads (docs/summary.md).

Built from a :class:`~loadtest.results.reduction.Reduction` (each collector's sections) and the
run folder's own facts (what ran against what, the target's counters), so it gives the same answer
live, at the end of a run, after a crash, or years later with ``loadtest report``.
"""

from __future__ import annotations

import math
from typing import Any

from loadtest.results.reduction import Reduction, read
from loadtest.results.runfolder import LogIndex, RunFolder
from loadtest.results.schema import SCHEMA_VERSION


def run_section(folder: RunFolder, index: LogIndex | None = None) -> dict[str, Any]:
    """What was run against what, and how well its log could be read."""
    info = folder.run_info()
    settings = info.get("settings", {})
    host = str(info.get("host") or "")
    section = {
        "target": info.get("host"),
        "started": info.get("started"),
        # Marked loudly: numbers from a run that skipped certificate checks say nothing about TLS.
        "tls_verification": "n/a (plain http)"
        if host.startswith("http://")
        else ("off (insecure)" if settings.get("insecure") else "on"),
        "reconnect_policy": settings.get("reconnect", {}).get("kind"),
        "source_addresses": len(settings.get("source_addresses", [])),
    }
    if index is not None:
        # Lines of the run's log that could not be read (a torn last line of a killed run aside):
        # each is a second of some worker's data missing from every number below.
        section["log_lines_unreadable"] = index.unreadable
    return section


def summarise(
    reduction: Reduction,
    folder: RunFolder | str,
    *,
    index: LogIndex | None = None,
    target: bool = True,
) -> dict[str, Any]:
    """The summary's data sections. ``target=False`` leaves out the target's counters (the live
    view, which must not re-read a growing file every second)."""
    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "run": run_section(folder, index)}
    out.update(reduction.sections())
    out["target_metrics"] = folder.target_metrics() if target else None
    return finite(out)


def summarise_folder(folder: RunFolder | str) -> dict[str, Any]:
    """The data sections of a run folder, from one pass over its log."""
    run = read(folder)
    return summarise(run.reduction, run.folder, index=run.index)


def finite(value: Any) -> Any:
    """Strict JSON has no NaN or infinity: such a value is "no data"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


__all__ = ["SCHEMA_VERSION", "finite", "run_section", "summarise", "summarise_folder"]
