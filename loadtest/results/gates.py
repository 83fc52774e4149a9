"""Gates: declarative pass/fail thresholds over the summary, as CI wants them.

``"tick.p5_ratio >= 0.9"``, ``"replay.accepted == 0"``, ``"http.join.p95_ms < 250"``,
``"rate_limit.enforced == true"``. The grammar is one comparison: ``METRIC OP VALUE``, where METRIC
is a dotted path into the summary, OP one of ``< <= > >= == !=`` and VALUE a number, ``true``,
``false`` or ``null``. It is parsed by a tokenizer, never ``eval``'d: scenario files arrive in pull
requests. A gate naming a metric that does not exist fails, and says which names are close.

HTTP metrics are named by the flow's step (``http.token.*``, ``http.join.*``); a gate written
with a path instead (``http./join.p95_ms``) is an alias of the step that has that path in this
run, so scenarios written before steps had names keep working against the backend they fit.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loadtest.errors import UsageError

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}
# Atomic groups and possessive quantifiers: once digits are taken they are never given back, so a
# number followed by a letter fails in one pass instead of retrying every split of its digits
# (quadratic: a 20,000-digit number took 38 s to reject).
_TOKEN = re.compile(
    r"\s*+(?:(?P<op><=|>=|==|!=|<|>)|(?P<number>[-+]?(?>\d++(?:\.\d*+)?|\.\d++)(?>[eE][-+]?\d++)?)(?![\w./:-])"
    r"|(?P<word>[A-Za-z_/][\w./:-]*+))"
)
#: Longest gate expression read; a real one is a few dozen characters.
MAX_EXPRESSION = 1000
#: Longest piece of an expression quoted back in an error message.
EXCERPT = 40
_LITERALS = {"true": True, "false": False, "null": None}
_FORM = (
    f"expected METRIC OP VALUE, e.g. 'tick.p5_ratio >= 0.9' (OP one of {' '.join(OPERATORS)}; "
    "VALUE a number, true, false or null)"
)


class GateSyntaxError(UsageError):
    """Raised when parsing a gate expression that is not ``METRIC OP VALUE``; the message shows
    where it went wrong."""


@dataclass(frozen=True)
class Gate:
    expression: str
    metric: str
    op: str
    value: float | bool | None
    over: float | None = None  # sliding window, seconds
    abort_on_fail: bool = False
    delay: float = 0.0  # seconds into the run before abort_on_fail may act

    @property
    def name(self) -> str:
        return self.expression if self.over is None else f"{self.expression} over {self.over:g}s"

    def holds(self, actual: Any) -> bool:
        if actual is None or self.value is None:
            return OPERATORS[self.op](actual, self.value) if self.op in ("==", "!=") else False
        if isinstance(self.value, bool) != isinstance(actual, bool):
            return False
        if isinstance(actual, float) and math.isnan(actual):
            return False
        try:
            return bool(OPERATORS[self.op](actual, self.value))
        except TypeError:
            return False

    def worse(self, a: Any, b: Any) -> Any:
        """Of two window values, the one that is further from passing (for "worst window")."""
        if a is None:
            return a
        if b is None:
            return b
        # An ordered comparison's worst window is its extreme, failing or not: stopping at the
        # first failing window would print that one as "worst" when a later one was worse.
        if self.op in (">", ">="):
            return min(a, b)
        if self.op in ("<", "<="):
            return max(a, b)
        if not self.holds(a):
            return a
        if not self.holds(b):
            return b
        return a


def _excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` quoted, cut to ``limit`` characters: an error message never echoes a megabyte."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def parse(expression: str, **options: Any) -> Gate:
    """One gate from its expression, in time linear in its length."""
    text = expression.strip()
    shown = _excerpt(text)
    if len(text) > MAX_EXPRESSION:
        raise GateSyntaxError(f"gate {shown}: longer than {MAX_EXPRESSION} characters; {_FORM}")
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text) and len(tokens) <= 3:
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise GateSyntaxError(f"gate {shown}: cannot read {_excerpt(text[pos:])} (position {pos + 1}); {_FORM}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    shape = [kind for kind, _ in tokens]
    if pos < len(text) or (shape != ["word", "op", "number"] and shape != ["word", "op", "word"]):
        raise GateSyntaxError(f"gate {shown}: {_FORM}")
    (_, metric), (_, op), (kind, raw) = tokens
    if kind == "word":
        if raw not in _LITERALS:
            raise GateSyntaxError(f"gate {shown}: {_excerpt(raw)} is not a value (a number, true, false or null)")
        value: float | bool | None = _LITERALS[raw]
    else:
        value = float(raw)
        if not math.isfinite(value):
            raise GateSyntaxError(f"gate {shown}: {_excerpt(raw)} is too large a number")
    return Gate(expression.strip(), metric, op, value, **options)


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every scalar of the summary under its dotted path (``http.join.p95_ms``)."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        elif isinstance(value, bool | int | float | str) or value is None:
            out[path] = value
    return out


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    value: Any
    passed: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.gate.name,
            "expression": self.gate.expression,
            "metric": self.gate.metric,
            "over": self.gate.over,
            "value": self.value,
            "passed": self.passed,
            "message": self.message,
        }


def resolve(metric: str, metrics: dict[str, Any]) -> str:
    """``metric`` with an HTTP path in place of a step name (``http./join.p95_ms``) turned into
    the step that has that path in these metrics (``http.join.p95_ms``); any other name as it is."""
    if metric in metrics or not metric.startswith("http."):
        return metric
    rest = metric[len("http.") :]
    for key, value in metrics.items():
        if not (key.startswith("http.") and key.endswith(".path") and isinstance(value, str)):
            continue
        step = key[len("http.") : -len(".path")]
        for path in value.split(", "):
            if path and (rest == path or rest.startswith(path + ".")):
                return f"http.{step}{rest[len(path) :]}"
    return metric


def evaluate(gate: Gate, metrics: dict[str, Any], windows: Iterable[dict[str, Any]] = ()) -> GateResult:
    """Judge one gate on the whole run's metrics, or on its worst window when it has ``over``."""
    metric = resolve(gate.metric, metrics)
    if metric not in metrics and any(k.startswith(metric + ".") for k in metrics):
        # A section that exists (tick.degradation once an onset was found): not null, not a number.
        passed = gate.op == "!=" and gate.value is None
        verdict = "passed" if passed else "FAILED"
        return GateResult(gate, "present", passed, f"{metric} is present (an object): {verdict}")
    if metric not in metrics:
        close = difflib.get_close_matches(metric, list(metrics), n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        return GateResult(gate, None, False, f"no metric named {metric!r}{hint}")
    value = metrics[metric]
    if gate.over is not None:
        values = [w.get(gate.metric, w.get(metric)) for w in windows]
        values = [v for v in values if v is not None] or [value]
        value = values[0]
        for other in values[1:]:
            value = gate.worse(value, other)
    if value is None and gate.value is not None:
        why = no_data_reason(metric, metrics)
        return GateResult(gate, None, False, f"{metric} has no data in this run{f': {why}' if why else ''}")
    passed = gate.holds(value)
    shown = f"{value:g}" if isinstance(value, float) else "null" if value is None else str(value).lower()
    verdict = "passed" if passed else "FAILED"
    where = f" (worst {gate.over:g}s window)" if gate.over is not None else ""
    return GateResult(gate, value, passed, f"{metric} = {shown}{where}: {verdict}")


#: Why a tick ratio has no value when the run never learnt its nominal rate.
NOMINAL_UNKNOWN = "nominal tick rate unknown"


def no_data_reason(metric: str, metrics: dict[str, Any]) -> str:
    """Why ``metric`` is null, when the summary can say (a tick ratio without a nominal rate)."""
    if metric.startswith("tick.") and metric.endswith("_ratio") and metrics.get("tick.nominal_hz") is None:
        return NOMINAL_UNKNOWN
    return ""
