"""summary.json is checked against its documented shape where it is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from loadtest.results.schema import SummaryError, validate

GOLDEN = Path(__file__).resolve().parents[2] / "integration" / "golden" / "expected" / "summary.json"


def _golden() -> dict:
    summary = json.loads(GOLDEN.read_text())
    summary["run"]["log_lines_unreadable"] = 0
    return summary


def test_a_real_summary_has_the_documented_shape() -> None:
    summary = _golden()
    assert validate(summary) is summary


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s["tick"].update(p5=s["tick"].pop("p5_hz")), "tick.p5"),  # renamed
        (lambda s: s["ws"].pop("sessions_opened"), "ws.sessions_opened"),  # dropped
        (lambda s: s["replay"]["by_kind"]["ticket_reuse"].update(accepted="many"), "replay.by_kind"),
        (lambda s: s.update(surprise=1), "surprise"),
    ],
)
def test_a_renamed_dropped_or_mistyped_key_is_an_error_naming_it(change, where: str) -> None:
    summary = copy.deepcopy(_golden())
    change(summary)
    with pytest.raises(SummaryError, match=where.replace(".", r"\.")):
        validate(summary)


@pytest.mark.parametrize(
    "metric",
    [
        "tick.p5_hz",
        "http./join.p95_ms",
        "http./v1.2/match.p99_ms",
        "tick.degradation",
        "integrity.carried_out",
        "generator.per_worker.host_1.cpu_max_pct",
        "ws.connect_failed.timeout",
        "rate_limit.probe.estimated_limit_per_s",
    ],
)
def test_every_metric_some_run_can_have_is_allowed(metric: str) -> None:
    from loadtest.results.schema import metric_problem

    assert metric_problem(metric) is None


def test_a_metric_no_run_can_have_is_named_with_close_names() -> None:
    from loadtest.results.schema import metric_problem

    problem = metric_problem("tick.p5")
    assert problem is not None and "'tick.p5'" in problem and "tick.p5_hz" in problem
    assert metric_problem("htp./join.p95_ms") is not None
    assert metric_problem("http./join") is None  # a map entry, comparable to null
