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


def _paths(annotation: Any, prefix: str, out: list[str]) -> None:
    """Every gate-able path under ``annotation``; ``*`` stands for a map's data key."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                _paths(arg, prefix, out)
        return
    if origin is dict:
        _paths(typing.get_args(annotation)[1], f"{prefix}*.", out)
        out.append(prefix.rstrip("."))  # a map may be compared as a whole only for == null
        return
    if origin is list:
        return  # lists (steps, storms, findings) are not gate metrics
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        out.append(prefix.rstrip("."))  # an object: gates may ask whether it is there (!= null)
        for name, field in annotation.model_fields.items():
            _paths(field.annotation, f"{prefix}{name}.", out)
        return
    out.append(prefix.rstrip("."))


@cache
def metric_paths() -> tuple[str, ...]:
    """The metric names a gate may use (``*`` for an endpoint, a reason or a worker)."""
    out: list[str] = []
    _paths(summary_model(), "", out)
    return tuple(dict.fromkeys(p for p in out if p))


def _matches(metric: str, pattern: str) -> bool:
    parts = pattern.split(".")
    if "*" not in parts:
        return metric == pattern
    i = parts.index("*")
    head, tail = ".".join(parts[:i]), ".".join(parts[i + 1 :])
    if head and not metric.startswith(head + "."):
        return False
    rest = metric[len(head) + 1 :] if head else metric
    if not tail:
        return bool(rest)
    # A data key may hold dots itself (an endpoint like /v1.2/join): try every split.
    return any(
        rest[:cut] and _matches(rest[cut + 1 :], tail) for cut in range(len(rest)) if rest[cut] == "."
    )


def metric_problem(metric: str) -> str | None:
    """Why no run of this harness can give ``metric`` (a typo, a renamed key), with close names;
    None when some run can. Checked before a run starts, so a gate that can never pass is a
    scenario error, not a failed run."""
    import difflib

    patterns = metric_paths()
    if any(_matches(metric, p) for p in patterns):
        return None
    close = difflib.get_close_matches(metric, patterns, n=4, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    return f"no run can have a metric named {metric!r}{hint} (docs/summary.md §14 lists them)"
