"""Fixtures shared by every test: reference backends (one factory), one throwaway CA, the suite's rules.

Backends are real processes on free loopback ports, and every one a fixture starts it stops:

- ``shared_backend`` / ``client``: one correct backend per test process, for tests that change nothing;
- ``backend``: the module's own, started as the module's ``pytestmark = pytest.mark.backend(...)`` says
  (arguments, ``defects=``, ``generous=``, ``tls=``), for modules whose counters or chaos must be theirs;
- ``start_backend``: a factory for a test that needs a backend of its own.

``ca`` is a trustme CA made once per test process; ``ca_pem`` is its certificate as a file, and
``tls_args`` issues a 127.0.0.1 certificate from it as a backend's ``--tls-cert``/``--tls-key``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

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


def in_ci() -> bool:
    """CI promises every prerequisite: there a missing one fails the test instead of skipping it."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require(reason: str) -> None:
    """A prerequisite that cannot be had here: skip with ``reason``, but fail under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: every prerequisite must be installable here)")
    pytest.skip(reason)


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_pem(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def tls_args(ca: trustme.CA, folder: Path) -> tuple[str, ...]:
    """A certificate for 127.0.0.1 and localhost, signed by ``ca``, as a backend's TLS arguments."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem = folder / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    return ("--tls-cert", str(pem), "--tls-key", str(pem))


# -- backends -------------------------------------------------------------------------------------


class Backends:
    """Starts reference backends and stops every one it started, newest first."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._request = request
        self._tmp = tmp_path_factory
        self.started: list[BackendProcess] = []

    def start(
        self, *args: str, defects: tuple[str, ...] = (), generous: bool = True, tls: bool = False
    ) -> BackendProcess:
        extra: tuple[str, ...] = ()
        if tls:
            extra = tls_args(self._request.getfixturevalue("ca"), self._tmp.mktemp("tls"))
        backend = BackendProcess(defects=defects, args=(*(GENEROUS_LIMITS if generous else ()), *extra, *args))
        self.started.append(backend.start())
        return backend

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()


@pytest.fixture(scope="session")
def shared_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendProcess]:
    """One correct backend with two game-server processes, shared by tests that change nothing."""
    backends = Backends(request, tmp_path_factory)
    try:
        yield backends.start("--game-servers", "2")
    finally:
        backends.stop()


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """The module's own backend, as its ``pytest.mark.backend(*args, defects=, generous=, tls=)`` says."""
    marker = request.node.get_closest_marker("backend")
    args, kwargs = (marker.args, marker.kwargs) if marker else ((), {})
    backends = Backends(request, tmp_path_factory)
    try:
        yield backends.start(*args, **kwargs)
    finally:
        backends.stop()


@pytest.fixture
def start_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., BackendProcess]]:
    """Start a backend of the test's own (defects, limits, TLS); every one is stopped afterwards."""
    backends = Backends(request, tmp_path_factory)
    try:
        yield backends.start
    finally:
        backends.stop()


@pytest.fixture
def client(shared_backend: BackendProcess) -> GameClient:
    return GameClient(shared_backend.url, admin_token=shared_backend.admin_token)


def client_of(backend: BackendProcess, **kwargs: object) -> GameClient:
    """A client for a backend a test started itself, holding that backend's admin token."""
    return GameClient(backend.url, admin_token=backend.admin_token, **kwargs)


# -- CPU-heavy tests, one at a time ---------------------------------------------------------------

HEAVY = "heavy"


def _is_heavy(item: pytest.Item) -> bool:
    return any(m.args[:1] == (HEAVY,) for m in item.iter_markers("xdist_group"))


#: How much longer than a plain test a ``slow`` one (a real Locust or ``loadtest run``) roughly takes.
SLOW_WEIGHT = 15


def _weight(item: pytest.Item) -> int:
    return SLOW_WEIGHT if item.get_closest_marker("slow") or _is_heavy(item) else 1


def spread_heavy(items: list[pytest.Item]) -> list[pytest.Item]:
    """The order the two workers take tests in: heavy tests spread evenly through the slow ones.

    Workers take the next test from one queue in this order. Heavy tests never overlap (the lock
    below), so two of them close together leave one worker waiting on the other; spread out, one
    heavy test runs beside ordinary ones nearly all the time. Slow tests come first, longest work
    first, and the quick ones last, so both workers end on many short tests and finish together.
    Deterministic, as xdist needs every worker to collect the same order.
    """
    heavy = [i for i in items if _is_heavy(i)]
    slow = [i for i in items if not _is_heavy(i) and _weight(i) > 1]
    quick = [i for i in items if _weight(i) == 1]
    if not heavy:
        return [*slow, *quick]
    # One heavy test at the start of each of len(heavy) equal shares of the slow work.
    share = sum(_weight(i) for i in slow) / len(heavy)
    ordered: list[pytest.Item] = []
    done, pending = 0.0, list(heavy)
    for item in slow:
        while pending and done >= share * (len(heavy) - len(pending)):
            ordered.append(pending.pop(0))
        ordered.append(item)
        done += _weight(item)
    return [*ordered, *pending, *quick]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A heavy test may wait for another to finish first: give it that time on top of its own.

    Under xdist (``PYTEST_XDIST_WORKER``) the tests are also put in the order :func:`spread_heavy` gives.
    """
    for item in items:
        if _is_heavy(item):
            item.add_marker(pytest.mark.timeout(360))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items[:] = spread_heavy(items)


@pytest.fixture(autouse=True)
def _one_heavy_test_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests marked ``xdist_group("heavy")`` (full rooms, 200-session storms, the browser) never overlap.

    ``--dist loadgroup`` should keep them on one worker, but with pytest 9.2 xdist 3.8's grouping
    is silently lost (it renames ``item._nodeid``, which pytest no longer reads), so the workers
    also take a lock in the run's shared temporary folder.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER") or not _is_heavy(request.node):
        yield
        return
    lock = tmp_path_factory.getbasetemp().parent / "heavy.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
