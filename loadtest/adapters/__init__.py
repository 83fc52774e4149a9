"""Adapters: the backends the harness can speak to, by the ``kind`` a scenario's ``[protocol]`` names.

An adapter is everything that differs from one backend to another and nothing else: the
:class:`~loadtest.adapters.protocol.Protocol` that speaks its flow and frames, the replay and rate-limit
probes that make sense against it, and the options it reads from the scenario. Players,
collectors, the engine, gates and reports are shared, so a number means the same thing on every
backend. ``docs/adapters.md`` shows how to write one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadtest.adapters.protocol import Protocol

if TYPE_CHECKING:  # settings read the adapters' option tables: import them the other way at run time
    from loadtest.config.settings import PlayerSettings


@dataclass(frozen=True)
class Option:
    """One key of the scenario's ``[protocol]`` table for this adapter.

    ``kind`` is a scenario value kind (string, number, int, bool, duration, strings, table).
    """

    kind: str
    default: Any = None
    allowed: tuple[Any, ...] | None = None
    required: bool = False
    help: str = ""


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

    def probe_class(self, which: str) -> type:
        module, _, name = (self.replay_probe if which == "replay" else self.rate_limit_probe).partition(":")
        return getattr(importlib.import_module(module), name)


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
