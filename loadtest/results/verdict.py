"""Judging a run folder: summary, gates, findings, ``summary.json``, JUnit and the report.

The same judging serves a headless ``loadtest run``, each test started from the web UI (on the
Locust master, when the test stops) and ``loadtest report`` years later: it reads nothing but the
run folder and the scenario, in one pass over the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loadtest.results.findings import findings
from loadtest.results.frames import frames
from loadtest.results.gates import Gate, GateResult, evaluate, flatten
from loadtest.results.junit import write_junit
from loadtest.results.reduction import read
from loadtest.results.runfolder import SUMMARY, RunFolder
from loadtest.results.schema import validate
from loadtest.results.summary import summarise


def window_metrics(gates: Iterable[Gate]) -> dict[float, list[str]]:
    """Window width -> the metrics its ``over`` gates read."""
    out: dict[float, list[str]] = {}
    for gate in gates:
        if gate.over:
            out.setdefault(float(gate.over), []).append(gate.metric)
    return out


def describe(scenario: Any, folder: RunFolder) -> dict[str, Any]:
    """The summary's ``scenario`` section; a plain ``locust -f`` run has no scenario."""
    if scenario is None:
        return {"name": folder.path.name, "description": "a plain Locust run", "file": None, "defects": []}
    return {
        "name": scenario.name,
        "description": scenario.description,
        "file": scenario.path,
        "users": scenario.users,
        "duration_s": scenario.duration,
        "workers": scenario.workers,
        "defects": list(scenario.defects),
    }


def finish(
    out_dir: str | Path, scenario: Any, *, incomplete: bool, aborted: str | None = None
) -> tuple[dict[str, Any], list[GateResult]]:
    """Summary, gates, findings, report and JUnit from the run folder alone. Without a scenario (a
    plain ``locust -f`` run) there are no gates, and the verdict only says whether the run was
    complete."""
    from loadtest.results.report import build_report

    folder = RunFolder(out_dir)
    gates = tuple(scenario.gates) if scenario is not None else ()
    run = read(folder, windows=window_metrics(gates))
    summary = summarise(run.reduction, folder, index=run.index)
    summary["scenario"] = describe(scenario, folder)
    metrics = flatten(summary)
    results = [evaluate(gate, metrics, run.windows[float(gate.over)].values if gate.over else ()) for gate in gates]
    summary["gates"] = [r.to_json() for r in results]
    summary["findings"] = findings(summary)
    summary["incomplete"] = incomplete
    summary["aborted"] = aborted
    summary["passed"] = all(r.passed for r in results) and not incomplete
    folder.write_json(SUMMARY, validate(summary))
    write_junit(folder.path / "junit.xml", summary["scenario"]["name"], results, incomplete=incomplete)
    build_report(folder.path, summary, run.reduction, frames(run.reduction))
    return summary, results


def judged(summary: dict[str, Any], gates: Iterable[Gate]) -> list[GateResult]:
    """The gate verdicts a judging already wrote into ``summary``, as results (no second judging)."""
    written = {g["name"]: g for g in summary.get("gates", [])}
    return [
        GateResult(g, written[g.name]["value"], written[g.name]["passed"], written[g.name]["message"])
        for g in gates
        if g.name in written
    ]
