"""The one way configuration is typed: pydantic models whose errors read as one line.

Every configuration format (scenario TOML, the settings JSON, ``--lt-*`` options, ``loadtest run``
flags and an adapter's ``[protocol]`` keys) is a model built on :class:`Model`, so a range or a
default is written once, on its field, and help texts are made from the same field
(:func:`help_for`). :func:`explain` turns pydantic's errors into ``key: what is wrong (what is
allowed)``, naming array items by index (``load.stages[1].users``).
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


class Problem(ValueError):
    """A check inside a model that knows which key it is about: ``key`` is added to the error's place."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _Constructing(type(BaseModel)):  # type: ignore[misc]
    """Direct construction (``PlayerSettings(input_rate=0)``) raises the model's own ``error``.

    Done here rather than in ``__init__``: pydantic validates a nested model with a custom
    ``__init__`` by calling it, which would lose strict validation and the nested key.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            if cls.error is None:
                raise
            raise cls.error(cls.explain_line(exc)) from None


class Model(BaseModel, metaclass=_Constructing):
    """A table of configuration: immutable, and an unknown key is an error that lists the allowed ones.

    ``error`` names the exception a direct construction or :meth:`check` raises instead of
    pydantic's (a one-line message naming the key), so callers catch one typed error per format.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: Keys accepted besides the fields (read by a before-validator of the subclass).
    extra_keys: ClassVar[tuple[str, ...]] = ()
    unknown_key: ClassVar[str] = "unknown key"
    error: ClassVar[type[ValueError] | None] = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = cls.allowed_keys()
            unknown = sorted(str(k) for k in data if k not in allowed)
            if unknown:
                raise Problem(unknown[0], f"{cls.unknown_key}; allowed here: {', '.join(sorted(allowed))}")
        return data

    @classmethod
    def allowed_keys(cls) -> set[str]:
        return set(cls.model_fields) | set(cls.extra_keys)

    @classmethod
    def key_of(cls, loc: tuple[str | int, ...]) -> str:
        """The user's name for a place in this model (the scenario key, for settings)."""
        return render(loc)

    @classmethod
    def explain_line(cls, exc: ValidationError) -> str:
        loc, message = explain(exc)
        key = cls.key_of(loc)
        return f"{key}: {message}" if key else message

    @classmethod
    def check(cls, data: Any) -> Any:
        """Validate ``data`` (lax: strings from a form or a command line are converted), raising ``error``."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            if cls.error is None:
                raise
            raise cls.error(cls.explain_line(exc)) from None

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes``, validated like a new instance (``model_copy`` would not check them)."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})


# -- value types ------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(value: Any) -> float:
    """``30``, ``"30s"``, ``"2m"``, ``"1h"``, ``"500ms"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f'{value!r} is not a duration (e.g. 30, "30s", "2m", "1h", "500ms")')
    return float(match.group(1)) * _UNITS[match.group(2)]


def _duration(value: Any) -> Any:
    return seconds(value) if isinstance(value, int | float | str) else value


#: Seconds, written as a number or with a unit ("30s", "2m", "500ms").
Seconds = Annotated[float, BeforeValidator(_duration)]


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def Array(item: Any) -> Any:
    """A TOML array / JSON list of ``item``, kept as a tuple (also under strict validation)."""
    return Annotated[tuple[item, ...], BeforeValidator(_as_tuple)]


def choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal`` (or ``Literal | None``) annotation."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return None


# -- errors -----------------------------------------------------------------------------------


def render(loc: Iterable[str | int]) -> str:
    """``("load", "stages", 1, "users")`` -> ``load.stages[1].users``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _quoted(expected: str) -> list[str]:
    return re.findall(r"'((?:[^'\\]|\\.)*)'", expected) or [expected]


def explain(exc: ValidationError) -> tuple[tuple[str | int, ...], str]:
    """The first error of ``exc`` as (place, one-line message in the project's words)."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, Problem) and cause.key:
        loc = (*loc, cause.key)
    return loc, message(error)


def message(error: Mapping[str, Any]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = f", got {value!r}"
    simple = {
        "missing": "required",
        "int_type": f"{value!r} is not a whole number",
        "int_parsing": f"{value!r} is not a whole number",
        "int_from_float": f"{value!r} is not a whole number",
        "float_type": f"{value!r} is not a number",
        "float_parsing": f"{value!r} is not a number",
        "finite_number": f"{value!r} is not a finite number",
        "bool_type": f"{value!r} is not true or false",
        "bool_parsing": f"{value!r} is not true or false",
        "string_type": f"{value!r} is not a string",
        "model_type": f"must be a table{got}",
        "model_attributes_type": f"must be a table{got}",
        "dict_type": f"must be a table{got}",
        "dataclass_type": f"must be a table{got}",
        "list_type": f"must be an array{got}",
        "tuple_type": f"must be an array{got}",
    }
    if kind in simple:
        return simple[kind]
    if kind == "greater_than":
        return f"must be > {_num(ctx['gt'])}{got}"
    if kind == "greater_than_equal":
        return f"must be >= {_num(ctx['ge'])}{got}"
    if kind == "less_than":
        return f"must be < {_num(ctx['lt'])}{got}"
    if kind == "less_than_equal":
        return f"must be <= {_num(ctx['le'])}{got}"
    if kind == "literal_error":
        return f"{value!r} is not allowed; one of: {', '.join(_quoted(str(ctx.get('expected', ''))))}"
    if kind in ("value_error", "assertion_error") and ctx.get("error") is not None:
        return str(ctx["error"])
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s){got}"
    if kind == "too_long":
        return f"takes at most {ctx.get('max_length')} item(s){got}"
    return str(error.get("msg", kind))


# -- derived models, help and command-line types ----------------------------------------------


def derive(name: str, source: type[BaseModel], keys: Mapping[str, str] | Iterable[str], **fields: Any) -> type[Model]:
    """A table of some of ``source``'s fields (``{table key: source field}`` to rename), same types,
    ranges and defaults: a scenario table that feeds a settings model states nothing twice."""
    pairs = keys.items() if isinstance(keys, Mapping) else ((k, k) for k in keys)
    copied = {
        key: (source.model_fields[field].annotation, copy.copy(source.model_fields[field])) for key, field in pairs
    }
    return create_model(name, __base__=Model, **copied, **fields)


def field_info(model: type[BaseModel], path: str | Iterable[str]) -> FieldInfo:
    """The field at a dotted ``path`` (``reconnect.base``), following nested models."""
    parts = path.split(".") if isinstance(path, str) else list(path)
    info = model.model_fields[parts[0]]
    for part in parts[1:]:
        nested = info.annotation
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            raise KeyError(path)
        info = nested.model_fields[part]
    return info


def default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None if info.default is PydanticUndefined else info.default


def range_text(info: FieldInfo) -> str:
    """``1..64``, ``> 0``, ``>= 0`` from a field's constraints ('' when it has none)."""
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for attr in ("gt", "ge", "lt", "le"):
            value = getattr(item, attr, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                bounds[attr] = value
    low = ("ge", bounds["ge"]) if "ge" in bounds else ("gt", bounds["gt"]) if "gt" in bounds else None
    high = ("le", bounds["le"]) if "le" in bounds else ("lt", bounds["lt"]) if "lt" in bounds else None
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"{_num(low[1])}..{_num(high[1])}"
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return ", ".join(f"{signs[b[0]]} {_num(b[1])}" for b in (low, high) if b)


def _show(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(_show(v) for v in value) or "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return _num(value)


def help_for(model: type[BaseModel], path: str, *, default: str = "default {}", allowed: bool = True) -> str:
    """``description (range; default D)`` from the field, so help cannot drift from the model.

    ``default`` formats the field's default (``"the scenario's, else {}"``); a field whose default
    is None may say what that means with ``json_schema_extra={"unset": "..."}``.
    """
    info = field_info(model, path)
    notes = []
    span = range_text(info) if allowed else ""
    if span:
        notes.append(span)
    if info.is_required():
        default = default.replace(", else {}", "")  # a required key has no default of its own
    if not info.is_required() or "{}" not in default:
        value = default_of(info)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        shown = str(extra["unset"]) if value is None and "unset" in extra else _show(value)
        notes.append(default.format(shown))
    text = info.description or path
    return f"{text} ({'; '.join(notes)})" if notes else text


def cli_type(model: type[BaseModel], path: str) -> Callable[[str], Any]:
    """An argparse ``type=`` that checks a value as the field does, with the field's own message."""
    info = field_info(model, path)
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(explain(exc)[1]) from None

    parse.__name__ = path.rsplit(".", 1)[-1]  # argparse names the type in some messages
    return parse
