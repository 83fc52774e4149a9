"""Adapters: the backends the harness can speak to, by the ``kind`` a scenario's ``[protocol]`` names.

An adapter is everything that differs from one backend to another and nothing else: the
:class:`~loadtest.adapters.protocol.Protocol` that speaks its flow and frames, the replay and rate-limit
probes that make sense against it, and the options it reads from the scenario. Players,
collectors, the engine, gates and reports are shared, so a number means the same thing on every
backend. ``docs/adapters.md`` shows how to write one.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, create_model
from pydantic_core import PydanticUndefined

from loadtest.adapters.protocol import Protocol
from loadtest.config import model

if TYPE_CHECKING:  # settings read the adapters' option tables: import them the other way at run time
    from loadtest.config.settings import PlayerSettings


def _plain_table(value: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError("must be a table of plain values (no dates or times)") from None
    return value


#: Option kinds -> the value types every other setting uses.
_KINDS: dict[str, Any] = {
    "string": str,
    "number": float,
    "int": int,
    "bool": bool,
    "duration": model.Seconds,
    "strings": model.Array(str),
    "numbers": model.Array(float),
    "table": Annotated[dict[str, Any], AfterValidator(_plain_table)],
}


@dataclass(frozen=True)
class Option:
    """One key of the scenario's ``[protocol]`` table for this adapter: its type, range and default,
    stated only here (the adapter reads its options back with :meth:`Adapter.read_options`).

    ``kind`` is a scenario value kind (string, number, int, bool, duration, strings, numbers, table);
    ``gt``, ``ge`` and ``le`` bound a number.
    """

    kind: str
    default: Any = None
    allowed: tuple[Any, ...] | None = None
    required: bool = False
    help: str = ""
    gt: float | None = None
    ge: float | None = None
    le: float | None = None

    def field(self) -> tuple[Any, Any]:
        """The pydantic (annotation, field) of this option."""
        annotation = Literal[self.allowed] if self.allowed else _KINDS[self.kind]
        if not self.required and self.default is None:
            annotation = annotation | None
        bounds = {k: v for k, v in (("gt", self.gt), ("ge", self.ge), ("le", self.le)) if v is not None}
        default = PydanticUndefined if self.required else copy.deepcopy(self.default)
        return annotation, Field(default, description=self.help, **bounds)


@dataclass(frozen=True)
class Adapter:
    kind: str
    #: Builds the protocol for one run from its settings (``settings.protocol_options`` hold the
    #: adapter's own options, already validated).
    make_protocol: Callable[[PlayerSettings], Protocol]
    options: dict[str, Option] = field(default_factory=dict)
    #: "module:Class" of the probes; imported only in the Locust process (they need gevent).
    replay_probe: str = "loadtest.probes.replay:ReplayProbe"
    rate_limit_probe: str = "loadtest.probes.ratelimit:RateLimitProbe"
    #: False when the embedded reference backend cannot stand in for the target.
    embedded_backend: bool = True
    #: Player settings this backend implies unless the scenario sets them (e.g. its patch rate).
    implied_settings: Callable[[dict[str, Any]], dict[str, Any]] = lambda options: {}
    #: Probe settings only this adapter's probes honour.
    probe_extras: tuple[str, ...] = ()

    def options_model(self) -> type[model.Model]:
        """The model of this adapter's ``[protocol]`` keys (``kind`` excluded), built once."""
        key = (self.kind, repr(self.options))
        built = _OPTION_MODELS.get(key)
        if built is None:
            fields = {name: option.field() for name, option in self.options.items()}
            built = _OPTION_MODELS[key] = create_model(f"{self.kind.title()}Options", __base__=model.Model, **fields)
        return built

    def read_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` checked and completed with the defaults (raises pydantic's ``ValidationError``)."""
        return self.options_model().model_validate(values).model_dump()

    def probe_class(self, which: str) -> type:
        module, _, name = (self.replay_probe if which == "replay" else self.rate_limit_probe).partition(":")
        return getattr(importlib.import_module(module), name)


_OPTION_MODELS: dict[tuple[Any, ...], type[model.Model]] = {}


def _reference(settings: PlayerSettings) -> Protocol:
    return Protocol(settings.protocol)


def _colyseus() -> Adapter:
    from loadtest.adapters import colyseus

    return colyseus.ADAPTER


_REGISTRY: dict[str, Callable[[], Adapter]] = {
    "reference": lambda: Adapter("reference", _reference),
    "colyseus": _colyseus,
}
KINDS: tuple[str, ...] = tuple(_REGISTRY)


class UnknownAdapter(ValueError):
    """A protocol kind no adapter is registered for."""


def get(kind: str) -> Adapter:
    factory = _REGISTRY.get(kind)
    if factory is None:
        raise UnknownAdapter(f"protocol kind {kind!r} is unknown; known: {', '.join(KINDS)}")
    return factory()


def protocol_for(settings: PlayerSettings) -> Protocol:
    """The protocol a run's players and probes speak."""
    return get(settings.protocol_kind).make_protocol(settings)
