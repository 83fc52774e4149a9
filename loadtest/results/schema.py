"""The shape of ``summary.json``, checked where it is written (docs/summary.md).

Each collector's reducer declares the models of its own sections
(:attr:`~loadtest.collectors.base.Reducer.models`); the run-level parts are declared here. The
summary's one writer (:func:`loadtest.results.verdict.finish`) validates the whole document
before writing it, so a section renamed or a key dropped in one place is an error in the test
suite, never a silent "no data" in a report or a gate. Unknown keys are refused at every level.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, create_model

from loadtest.collectors.base import Section, registered
from loadtest.results.integrity import IntegritySection

#: Bumped whenever the shape of summary.json changes (docs/summary.md lists what changed).
SCHEMA_VERSION = 2


class SummaryError(ValueError):
    """The summary a judging built does not have the documented shape: a bug, said precisely."""


class RunSection(Section):
    target: str | None
    started: float | None
    tls_verification: str
    reconnect_policy: str | None
    source_addresses: int
    log_lines_unreadable: int = 0


class ScenarioSection(Section):
    name: str
    description: str | None
    file: str | None
    users: int | None = None
    duration_s: float | None = None
    workers: int | None = None
    defects: list[str]


class GateVerdict(Section):
    name: str
    expression: str
    metric: str
    over: float | None
    value: Any
    passed: bool
    message: str


@cache
def summary_model() -> type[BaseModel]:
    """The whole document: run-level fields, then every registered collector's sections."""
    fields: dict[str, Any] = {
        "schema_version": (int, ...),
        "integrity": (IntegritySection | None, None),
        "run": (RunSection, ...),
    }
    for reducer in registered().values():
        for section, model in reducer.models.items():
            fields[section] = (model, ...)
    fields |= {
        "target_metrics": (dict[str, Any] | None, ...),
        "scenario": (ScenarioSection | None, None),
        "gates": (list[GateVerdict], []),
        "findings": (list[str], []),
        "incomplete": (bool, False),
        "aborted": (str | None, None),
        "outcome": (Literal["passed", "failed", "not carried out"] | None, None),
        "passed": (bool | None, None),
    }
    return create_model("Summary", __base__=Section, **fields)


def validate(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` itself when it has the documented shape; :class:`SummaryError` otherwise."""
    try:
        summary_model().model_validate(summary)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)[:10]
        )
        raise SummaryError(f"summary.json would not match docs/summary.md: {problems}") from None
    return summary
