"""Fixtures that start real reference-backend processes on free loopback ports and stop them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from loadtest.backend import BackendProcess
from tests.client import GameClient

#: Limits high enough that tests sharing one backend never trip them by accident; the rate-limit
#: tests start their own backend with the real defaults.
# fmt: off
GENEROUS_LIMITS = (
    "--token-rate", "1000", "--token-burst", "1000",
    "--join-rate", "1000", "--join-burst", "1000",
    "--join-player-rate", "1000", "--join-player-burst", "1000",
)
# fmt: on


@pytest.fixture(scope="session")
def shared_backend() -> Iterator[BackendProcess]:
    """One correct backend with two game-server processes, shared by tests that change nothing."""
    with BackendProcess(args=("--game-servers", "2", *GENEROUS_LIMITS)) as backend:
        yield backend


@pytest.fixture
def client(shared_backend: BackendProcess) -> GameClient:
    return GameClient(shared_backend.url, admin_token=shared_backend.admin_token)


def client_of(backend: BackendProcess, **kwargs: object) -> GameClient:
    """A client for a backend a test started itself, holding that backend's admin token."""
    return GameClient(backend.url, admin_token=backend.admin_token, **kwargs)


@pytest.fixture
def start_backend() -> Iterator[Callable[..., BackendProcess]]:
    """Start a backend of the test's own (defects, limits); every one is stopped afterwards."""
    started: list[BackendProcess] = []

    def start(*args: str, defects: tuple[str, ...] = (), generous: bool = True) -> BackendProcess:
        backend = BackendProcess(defects=defects, args=(*(GENEROUS_LIMITS if generous else ()), *args))
        started.append(backend.start())
        return backend

    yield start
    for backend in started:
        backend.stop()
