"""Adapters: the backends the harness can speak to, by the ``kind`` a scenario's ``[protocol]`` names.

An adapter is everything that differs from one backend to another and nothing else: the
:class:`~loadtest.adapters.protocol.Protocol` that speaks its flow and frames, the replay and rate-limit
probes that make sense against it, and the options it reads from the scenario. Players,
collectors, the engine, gates and reports are shared, so a number means the same thing on every
backend. ``docs/adapters.md`` shows how to write one.

Adapters from other packages need no change here: either call :func:`register_adapter` where both
the command line and the Locust processes import it, or declare an entry point in the group
``loadtest.adapters`` (``mygame = "mygame.loadtest:ADAPTER"``: an :class:`Adapter` or a callable
returning one). Entry points are listed by name and imported only when a run asks for their kind.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, create_model
from pydantic_core import PydanticUndefined

from loadtest.adapters.protocol import Protocol
from loadtest.config import model
from loadtest.errors import UsageError

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
    """Everything that differs for one kind of backend: how to speak it, which probes fit it, and
    the ``[protocol]`` keys its scenarios may set. Make it known with :func:`register_adapter` or an
    entry point."""

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


#: The entry-point group other packages declare their adapters in.
ENTRY_POINT_GROUP = "loadtest.adapters"

#: An adapter, or a callable that builds one when its kind is first asked for (so a module that
#: imports heavy dependencies loads only for the runs that use it).
AdapterFactory = Adapter | Callable[[], Adapter]

_REGISTRY: dict[str, AdapterFactory] = {
    "reference": lambda: Adapter("reference", _reference),
    "colyseus": _colyseus,
}
_loaded: dict[str, Adapter] = {}


class AdapterError(UsageError):
    """Raised when an adapter cannot be used as declared: a kind registered twice, an entry point
    that fails to import or does not give an :class:`Adapter`, or an adapter whose ``kind`` differs
    from the name it was registered under."""


class UnknownAdapter(AdapterError):
    """Raised by :func:`get` for a protocol kind no adapter is registered or declared for; the
    message lists the known kinds, entry-point ones included."""


def register_adapter(kind: str, factory: AdapterFactory, *, replace: bool = False) -> None:
    """Make ``kind`` available to scenarios (``[protocol] kind = "<kind>"``).

    ``factory`` is the :class:`Adapter` or a callable returning it, called once, at the first
    lookup. A kind already registered is refused unless ``replace`` is true, so two packages cannot
    silently take the same name. Scenarios are read by the ``loadtest`` command and the Locust
    processes alike, so register where both import it; an entry point in the group
    ``loadtest.adapters`` needs no import at all.
    """
    if not isinstance(kind, str) or not kind:
        raise AdapterError(f"an adapter kind must be a non-empty string, got {kind!r}")
    if kind in _REGISTRY and not replace:
        raise AdapterError(f"protocol kind {kind!r} is already registered; pass replace=True to override it")
    _REGISTRY[kind] = factory
    _loaded.pop(kind, None)


def _entry_points() -> importlib.metadata.EntryPoints:
    # Read afresh each time: cheap (metadata only, nothing is imported), and it sees packages
    # installed or put on sys.path after this module was imported.
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def kinds() -> tuple[str, ...]:
    """Every protocol kind a scenario may name: built in, registered, then declared by entry points."""
    names = dict.fromkeys(_REGISTRY)
    names.update(dict.fromkeys(ep.name for ep in _entry_points()))
    return tuple(names)


def get(kind: str) -> Adapter:
    """The adapter for ``kind``, building it (and importing an entry point's module) on first use."""
    adapter = _loaded.get(kind)
    if adapter is not None:
        return adapter
    factory = _REGISTRY.get(kind)
    source = f"protocol kind {kind!r}"
    if factory is None:
        declared = [ep for ep in _entry_points() if ep.name == kind]
        if not declared:
            raise UnknownAdapter(f"protocol kind {kind!r} is unknown; known: {', '.join(kinds())}")
        ep = declared[0]
        source = f"adapter entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP})"
        try:
            factory = ep.load()
        except Exception as exc:  # a broken plug-in is the user's to fix: one line, no traceback
            raise AdapterError(f"{source} could not be loaded: {exc.__class__.__name__}: {exc}") from exc
    adapter = factory if isinstance(factory, Adapter) else factory()
    if not isinstance(adapter, Adapter):
        raise AdapterError(f"{source} gave a {type(adapter).__name__}, not a loadtest.Adapter")
    if adapter.kind != kind:
        raise AdapterError(f"{source} gave the adapter of kind {adapter.kind!r}")
    _loaded[kind] = adapter
    return adapter


def protocol_for(settings: PlayerSettings) -> Protocol:
    """The protocol a run's players and probes speak."""
    return get(settings.protocol_kind).make_protocol(settings)


def _known_kind(kind: str) -> str:
    if kind not in kinds():
        raise ValueError(f"unknown protocol kind {kind!r}; known: {', '.join(kinds())}")
    return kind


#: A ``[protocol] kind`` value: any kind registered now, entry-point ones included.
AdapterKind = Annotated[str, AfterValidator(_known_kind)]
