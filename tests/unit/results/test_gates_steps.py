"""Gates name the flow's steps; a path is an alias of the step that has it; ratios without a nominal say why."""

from __future__ import annotations

import pytest

from loadtest.results.gates import NOMINAL_UNKNOWN, evaluate, flatten, parse, resolve
from loadtest.results.schema import metric_problem

SUMMARY = {
    "tick": {"nominal_hz": 30.0, "p5_hz": 29.7, "p5_ratio": 0.99},
    "http": {
        "token": {"path": "/api/v2/auth", "p95_ms": 40.0},
        "join": {"path": "/api/v2/match", "p95_ms": 120.0},
    },
}
METRICS = flatten(SUMMARY)
STEPS = {"token": "/api/v2/auth", "join": "/api/v2/match"}


@pytest.mark.parametrize(
    ("expression", "passed", "metric"),
    [
        ("http.join.p95_ms < 250", True, "http.join.p95_ms"),
        ("http./api/v2/match.p95_ms < 250", True, "http.join.p95_ms"),  # its path: an alias
        ("http./api/v2/match.p95_ms < 100", False, "http.join.p95_ms"),
        ("http./api/v2/auth.p95_ms <= 40", True, "http.token.p95_ms"),
        ("tick.p5_ratio >= 0.9", True, "tick.p5_ratio"),
    ],
)
def test_a_path_names_the_step_that_has_it(expression: str, passed: bool, metric: str) -> None:
    result = evaluate(parse(expression), METRICS)
    assert result.passed is passed, result.message
    assert result.message.startswith(f"{metric} = ")


def test_a_path_no_step_has_in_this_run_is_no_metric_with_close_names() -> None:
    result = evaluate(parse("http./join.p95_ms < 250"), METRICS)
    assert not result.passed and "no metric named 'http./join.p95_ms'" in result.message
    assert resolve("http./join.p95_ms", METRICS) == "http./join.p95_ms"
    # A step section compared with null is present, by name or by path.
    assert evaluate(parse("http./api/v2/match != null"), METRICS).passed


def test_a_windowed_path_gate_reads_the_windows_of_its_step() -> None:
    gate = parse("http./api/v2/match.p95_ms < 250", over=10.0)
    windows = [{"http./api/v2/match.p95_ms": 100.0}, {"http./api/v2/match.p95_ms": 300.0}]
    result = evaluate(gate, METRICS, windows)
    assert not result.passed and result.value == 300.0


def test_a_ratio_without_a_nominal_rate_has_no_data_and_says_why() -> None:
    unknown = flatten({"tick": {"nominal_hz": None, "p5_hz": 29.7, "p5_ratio": None}})
    result = evaluate(parse("tick.p5_ratio >= 0.9"), unknown)
    assert not result.passed
    assert result.message == f"tick.p5_ratio has no data in this run: {NOMINAL_UNKNOWN}"
    # With a nominal rate but no ticks, it is plain "no data": the rate was not the problem.
    no_ticks = flatten({"tick": {"nominal_hz": 30.0, "p5_hz": None, "p5_ratio": None}})
    assert evaluate(parse("tick.p5_ratio >= 0.9"), no_ticks).message == "tick.p5_ratio has no data in this run"


@pytest.mark.parametrize(
    "metric",
    ["http.join.p95_ms", "http./api/v2/match.p95_ms", "http.token", "http.token.status.429", "tick.p5_ratio"],
)
def test_a_gate_on_a_step_of_this_protocol_or_its_path_can_be_met(metric: str) -> None:
    assert metric_problem(metric, STEPS) is None


def test_a_gate_on_a_step_this_protocol_lacks_is_refused_with_its_steps_and_close_names() -> None:
    problem = metric_problem("http./join.p95_ms", STEPS)
    assert problem is not None
    assert "token (/api/v2/auth), join (/api/v2/match)" in problem and "close names: http.join.p95_ms" in problem
    assert "http.jion.p95_ms" in (metric_problem("http.jion.p95_ms", STEPS) or "")
    # An extra step named in protocol.steps is one of them; without steps any step name may be met.
    assert metric_problem("http.profile.p95_ms", {**STEPS, "profile": "/api/v2/me"}) is None
    assert metric_problem("http.profile.p95_ms") is None
    # A metric no run has is refused whatever the steps.
    assert metric_problem("http.join.p96_ms", STEPS) is not None
