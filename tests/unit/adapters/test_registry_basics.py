"""The adapter registry (``loadtest/adapters/__init__.py``): a scenario's ``protocol.kind`` finds its adapter.

Only the registry's public entry points are used (``get``, ``kinds()``, ``protocol_for``), so these
tests hold however adapters come to be registered.
"""

from __future__ import annotations

import pytest

from loadtest import adapters
from loadtest.adapters.protocol import Protocol
from loadtest.config.settings import PlayerSettings


def test_the_bundled_kinds_are_registered() -> None:
    assert {"reference", "colyseus"} <= set(adapters.kinds())


@pytest.mark.parametrize("kind", ["reference", "colyseus"])
def test_get_returns_the_adapter_of_that_kind(kind: str) -> None:
    adapter = adapters.get(kind)
    assert adapter.kind == kind
    assert isinstance(adapter.options, dict)


def test_the_reference_adapter_speaks_the_settings_protocol() -> None:
    settings = PlayerSettings()
    protocol = adapters.protocol_for(settings)
    assert isinstance(protocol, Protocol)
    assert adapters.get("reference").embedded_backend is True


def test_colyseus_cannot_use_the_embedded_reference_backend() -> None:
    assert adapters.get("colyseus").embedded_backend is False


def test_an_unknown_kind_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ValueError, match="unknown") as info:
        adapters.get("quake3")
    message = str(info.value)
    assert "quake3" in message
    assert all(kind in message for kind in adapters.kinds())
