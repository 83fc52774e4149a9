"""game-loadtest: load and resilience testing for multiplayer game backends.

The names here are what you need to test your own backend: a player (:class:`GamePlayer`, its
flow steps and :class:`Attempt`), a protocol (:class:`Protocol`, :class:`ProtocolConfig`, the
grants and message kinds), an adapter (:class:`Adapter`, :class:`Option`,
:func:`register_adapter`), probes (:class:`ReplayProbe`, :class:`RateLimitProbe`,
:class:`ProbeSkipped`), the errors under :class:`LoadtestError`, and :class:`ExitCode`. Anything
else may change between versions.

Every name is imported on first use, so ``import loadtest`` loads nothing else. That matters:
``GamePlayer``, ``Attempt`` and the probes import Locust or gevent, and Locust patches the process
with gevent the moment it is imported; the command line, the reference backend and test runners
must stay unpatched. In a script of your own (not a locustfile run by ``locust -f``), touch
those names before anything that imports :mod:`ssl` (``ScenarioError`` and ``BackendStartError``
do), as Locust requires of anything imported before it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Exported name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # players (import Locust and gevent)
    "GamePlayer": "loadtest.runtime.player",
    "Attempt": "loadtest.runtime.player",
    # protocols
    "Protocol": "loadtest.adapters.protocol",
    "ProtocolConfig": "loadtest.adapters.protocol",
    "TokenGrant": "loadtest.adapters.protocol",
    "JoinGrant": "loadtest.adapters.protocol",
    "Opening": "loadtest.adapters.protocol",
    "TICK": "loadtest.adapters.protocol",
    "PATCH": "loadtest.adapters.protocol",
    "ACK": "loadtest.adapters.protocol",
    "WELCOME": "loadtest.adapters.protocol",
    "LOBBY": "loadtest.adapters.protocol",
    "OTHER": "loadtest.adapters.protocol",
    "PlayerSettings": "loadtest.config.settings",
    # adapters
    "Adapter": "loadtest.adapters",
    "Option": "loadtest.adapters",
    "register_adapter": "loadtest.adapters",
    # probes (import gevent)
    "ReplayProbe": "loadtest.probes.replay",
    "RateLimitProbe": "loadtest.probes.ratelimit",
    # exit codes and errors
    "ExitCode": "loadtest.exitcodes",
    "LoadtestError": "loadtest.errors",
    "UsageError": "loadtest.errors",
    "NotCarriedOutError": "loadtest.errors",
    "ProbeSkipped": "loadtest.errors",
    "ProtocolError": "loadtest.adapters.protocol",
    "ScenarioError": "loadtest.config.scenario",
    "SettingsError": "loadtest.config.settings",
    "PolicyError": "loadtest.runtime.backoff",
    "GateSyntaxError": "loadtest.results.gates",
    "AdapterError": "loadtest.adapters",
    "UnknownAdapter": "loadtest.adapters",
    "StormError": "loadtest.errors",
    "BackendStartError": "loadtest.backend.process",
}

__all__ = [
    "ACK",
    "LOBBY",
    "OTHER",
    "PATCH",
    "TICK",
    "WELCOME",
    "Adapter",
    "AdapterError",
    "Attempt",
    "BackendStartError",
    "ExitCode",
    "GamePlayer",
    "GateSyntaxError",
    "JoinGrant",
    "LoadtestError",
    "NotCarriedOutError",
    "Opening",
    "Option",
    "PlayerSettings",
    "PolicyError",
    "ProbeSkipped",
    "Protocol",
    "ProtocolConfig",
    "ProtocolError",
    "RateLimitProbe",
    "ReplayProbe",
    "ScenarioError",
    "SettingsError",
    "StormError",
    "TokenGrant",
    "UnknownAdapter",
    "UsageError",
    "__version__",
    "register_adapter",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'loadtest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # for type checkers and editors; at run time the names load on first use
    from loadtest.adapters import Adapter, AdapterError, Option, UnknownAdapter, register_adapter
    from loadtest.adapters.protocol import (
        ACK,
        LOBBY,
        OTHER,
        PATCH,
        TICK,
        WELCOME,
        JoinGrant,
        Opening,
        Protocol,
        ProtocolConfig,
        ProtocolError,
        TokenGrant,
    )
    from loadtest.backend.process import BackendStartError
    from loadtest.config.scenario import ScenarioError
    from loadtest.config.settings import PlayerSettings, SettingsError
    from loadtest.errors import LoadtestError, NotCarriedOutError, ProbeSkipped, StormError, UsageError
    from loadtest.exitcodes import ExitCode
    from loadtest.probes.ratelimit import RateLimitProbe
    from loadtest.probes.replay import ReplayProbe
    from loadtest.results.gates import GateSyntaxError
    from loadtest.runtime.player import Attempt, GamePlayer
