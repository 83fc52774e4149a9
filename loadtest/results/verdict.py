"""Judging a run folder: summary, gates, findings, ``summary.json``, JUnit and the report.

The same judging serves a headless ``loadtest run``, each test started from the web UI (on the
Locust master, when the test stops) and ``loadtest report`` years later: it reads nothing but the
run folder and the scenario, in one pass over the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loadtest.exitcodes import ExitCode
from loadtest.results.findings import findings
from loadtest.results.frames import frames
from loadtest.results.gates import Gate, GateResult, evaluate, flatten
from loadtest.results.integrity import check
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


#: The three outcomes, and the exit code of each.
PASSED, FAILED, NOT_CARRIED_OUT = "passed", "failed", "not carried out"
EXIT_CODES = {PASSED: ExitCode.PASSED, FAILED: ExitCode.FAILED, NOT_CARRIED_OUT: ExitCode.NOT_CARRIED_OUT}


def outcome(integrity: dict[str, Any], results: Iterable[GateResult], aborted: str | None) -> str:
    """Not carried out beats failed beats passed: a gate verdict on a run that did not do its plan
    is shown, but it is never a pass."""
    if not integrity["carried_out"]:
        return NOT_CARRIED_OUT
    if aborted or not all(r.passed for r in results):
        return FAILED
    return PASSED


def finish(
    out_dir: str | Path,
    scenario: Any,
    *,
    incomplete: bool,
    aborted: str | None = None,
    interrupted: bool = False,
    locust_exit_code: int | None = None,
) -> tuple[dict[str, Any], list[GateResult]]:
    """Summary, integrity, gates, findings, report and JUnit from the run folder alone. Without a
    scenario (a plain ``locust -f`` run) there are no gates and no plan beyond the run itself.

    ``incomplete`` says the numbers cover part of the run (an interrupt, an abort, a run killed
    before it was judged); ``interrupted`` that a person stopped it."""
    from loadtest.results.report import build_report

    folder = RunFolder(out_dir)
    gates = tuple(scenario.gates) if scenario is not None else ()
    run = read(folder, windows=window_metrics(gates))
    summary = summarise(run.reduction, folder, index=run.index)
    summary["scenario"] = describe(scenario, folder)
    metrics = flatten(summary)
    results = [evaluate(gate, metrics, run.windows[float(gate.over)].values if gate.over else ()) for gate in gates]
    integrity = check(
        run.reduction,
        summary,
        folder.settings(),
        scenario,
        interrupted=interrupted,
        locust_exit_code=locust_exit_code,
    )
    if incomplete and not (interrupted or aborted or integrity["reasons"]):
        integrity["reasons"].append("the run ended before it was judged (it was stopped or killed)")
        integrity["carried_out"] = False
    summary = {"schema_version": summary["schema_version"], "integrity": integrity, **summary}
    summary["gates"] = [r.to_json() for r in results]
    summary["findings"] = findings(summary)
    summary["incomplete"] = incomplete
    summary["aborted"] = aborted
    summary["outcome"] = outcome(integrity, results, aborted)
    summary["passed"] = summary["outcome"] == PASSED
    folder.write_json(SUMMARY, validate(summary))
    write_junit(folder.path / "junit.xml", summary["scenario"]["name"], results, integrity=integrity)
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
