"""JUnit XML: one test case per gate, so a CI system lists each threshold with its verdict."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from loadtest.results.gates import GateResult


def write_junit(path: Path, scenario: str, results: list[GateResult], *, incomplete: bool) -> None:
    failures = sum(1 for r in results if not r.passed)
    suite = ET.Element(
        "testsuite",
        name=f"loadtest.{scenario}",
        tests=str(len(results) + (1 if incomplete else 0)),
        failures=str(failures),
        errors=str(1 if incomplete else 0),
    )
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=f"loadtest.{scenario}.gates", name=result.gate.name)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.message, type="GateFailed")
            failure.text = f"{result.gate.expression}\n{result.message}"
        else:
            ET.SubElement(case, "system-out").text = result.message
    if incomplete:
        case = ET.SubElement(suite, "testcase", classname=f"loadtest.{scenario}", name="run completed")
        ET.SubElement(case, "error", message="the run was interrupted or aborted; numbers cover part of it")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
