"""JUnit XML as a CI system reads it: a case for the run's integrity, one per gate, failures typed, a run not
carried out an error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from loadtest.results.gates import evaluate, parse
from loadtest.results.junit import write_junit

METRICS = {"tick.p5_hz": 58.5, "replay.accepted": 2}
CARRIED_OUT = {"carried_out": True, "reasons": [], "notes": []}


def suite_of(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    return suite


def test_each_gate_is_a_case_and_a_failed_one_carries_its_expression(tmp_path: Path) -> None:
    results = [evaluate(parse("tick.p5_hz >= 54"), METRICS), evaluate(parse("replay.accepted == 0"), METRICS)]
    write_junit(tmp_path / "junit.xml", "smoke", results, integrity=CARRIED_OUT)
    suite = suite_of(tmp_path / "junit.xml")
    assert suite.get("name") == "loadtest.smoke"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    integrity, passed, failed = suite.findall("testcase")
    assert integrity.get("name") == "run carried out its plan" and integrity.find("error") is None
    assert passed.get("name") == "tick.p5_hz >= 54" and passed.find("failure") is None
    assert "58.5" in (passed.findtext("system-out") or "")
    failure = failed.find("failure")
    assert failure is not None and failure.get("type") == "GateFailed"
    assert "replay.accepted == 0" in (failure.text or "") and "FAILED" in (failure.get("message") or "")


def test_a_windowed_gate_is_named_with_its_window(tmp_path: Path) -> None:
    gate = parse("tick.p5_hz >= 54", over=10)
    write_junit(tmp_path / "j.xml", "s", [evaluate(gate, METRICS, [{"tick.p5_hz": 50.0}])], integrity=CARRIED_OUT)
    _, case = suite_of(tmp_path / "j.xml").findall("testcase")
    assert case.get("name") == "tick.p5_hz >= 54 over 10s" and case.find("failure") is not None


def test_a_run_not_carried_out_is_an_error_with_its_reasons_even_when_every_gate_passed(tmp_path: Path) -> None:
    integrity = {"carried_out": False, "reasons": ["worker w2 was lost at 12 s"], "notes": []}
    write_junit(tmp_path / "j.xml", "s", [evaluate(parse("tick.p5_hz >= 54"), METRICS)], integrity=integrity)
    suite = suite_of(tmp_path / "j.xml")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "1")
    error = suite.findall("testcase")[0].find("error")
    assert error is not None and error.get("type") == "NotCarriedOut" and "w2 was lost" in (error.text or "")


def test_no_gates_and_hostile_names_still_make_valid_xml(tmp_path: Path) -> None:
    write_junit(tmp_path / "j.xml", 'a<b>&"c', [], integrity=CARRIED_OUT)
    suite = suite_of(tmp_path / "j.xml")
    assert suite.get("name") == 'loadtest.a<b>&"c' and suite.get("tests") == "1"
