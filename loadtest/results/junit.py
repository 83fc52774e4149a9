"""JUnit XML: one test case per gate, and one for the run's integrity, so a CI system lists each
threshold with its verdict and a run that did not do its plan as an error of its own."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from loadtest.results.gates import GateResult
from loadtest.results.integrity import load_lines

INTEGRITY_CASE = "run carried out its plan"


def write_junit(path: Path, scenario: str, results: list[GateResult], *, integrity: dict[str, Any]) -> None:
    failures = sum(1 for r in results if not r.passed)
    carried_out = bool(integrity["carried_out"])
    suite = ET.Element(
        "testsuite",
        name=f"loadtest.{scenario}",
        tests=str(len(results) + 1),
        failures=str(failures),
        errors=str(0 if carried_out else 1),
    )
    case = ET.SubElement(suite, "testcase", classname=f"loadtest.{scenario}", name=INTEGRITY_CASE)
    load = load_lines(integrity)
    if carried_out:
        said = list(integrity["notes"]) or ["carried out as planned"]
        ET.SubElement(case, "system-out").text = "\n".join(said + load)
    else:
        reasons = list(integrity["reasons"])
        error = ET.SubElement(case, "error", message="not carried out: " + "; ".join(reasons), type="NotCarriedOut")
        error.text = "\n".join(reasons)
        if load:  # the plan against what happened, beside the reasons
            ET.SubElement(case, "system-out").text = "\n".join(load)
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=f"loadtest.{scenario}.gates", name=result.gate.name)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.message, type="GateFailed")
            failure.text = f"{result.gate.expression}\n{result.message}"
        else:
            ET.SubElement(case, "system-out").text = result.message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
