"""The relay measured against its settings, with real sockets on loopback (no Locust, no backend)."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from loadtest.runtime.relay import Conditions, Relay


class Upstream:
    """A TCP server on loopback that echoes, remembers each peer's address, and can sink or stream."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.peers: list[str] = []
        self.closed: list[tuple[str, float]] = []  # (how, when) each accepted connection ended
        self.received = 0
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            self.peers.append(peer[0])
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                self.closed.append(("reset", time.monotonic()))
                return
            if not data:
                self.closed.append(("fin", time.monotonic()))
                return
            self.received += len(data)
            if self.mode == "echo":
                conn.sendall(data)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.stop()


@pytest.fixture
def relay() -> Iterator[Relay]:
    r = Relay(seed=1)
    yield r
    r.stop()


UPGRADE = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"


def _connect(address: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(address, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _round_trips(sock: socket.socket, count: int) -> list[float]:
    times = []
    for i in range(count):
        payload = f"ping {i:04d}\n".encode()
        started = time.perf_counter()
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(64)
            assert chunk, "the relay closed the connection"
            got += chunk
        times.append(time.perf_counter() - started)
        assert got == payload
    return times


def test_clean_route_forwards_and_keeps_the_source_address(relay: Relay, upstream: Upstream) -> None:
    route = relay.route(upstream.address, source="127.0.0.7")
    with _connect(route) as sock:
        _round_trips(sock, 5)
    assert upstream.peers == ["127.0.0.7"]  # the target sees the player's address, not the relay's
    assert relay.stats.connections == 1


def test_added_latency_matches_its_setting(relay: Relay, upstream: Upstream) -> None:
    direct = _connect(upstream.address)
    base = statistics.median(_round_trips(direct, 10))
    direct.close()
    with _connect(relay.route(upstream.address, conditions=Conditions(latency_ms=40))) as sock:
        rtts = _round_trips(sock, 15)
    added_ms = (statistics.median(rtts) - base) * 1000
    # 40 ms each way: a round trip pays twice.
    assert 80 - 3 <= added_ms <= 80 + 8, added_ms


def test_jitter_spreads_round_trips_around_the_latency(relay: Relay, upstream: Upstream) -> None:
    with _connect(relay.route(upstream.address, conditions=Conditions(latency_ms=30, jitter_ms=20))) as sock:
        rtts = [t * 1000 for t in _round_trips(sock, 30)]
    assert min(rtts) >= 60 - 40 - 1
    assert max(rtts) - min(rtts) > 15  # spread, not a fixed delay
    assert 45 <= statistics.mean(rtts) <= 80


def test_bandwidth_cap_within_ten_percent(relay: Relay) -> None:
    sink = Upstream(mode="sink")
    try:
        with _connect(relay.route(sink.address, conditions=Conditions(bandwidth_kb_s=200))) as sock:
            payload = b"x" * 200_000  # one second at 200 KB/s
            started = time.monotonic()
            sock.sendall(payload)
            deadline = started + 10
            while sink.received < len(payload) and time.monotonic() < deadline:
                time.sleep(0.005)
            took = time.monotonic() - started
        assert sink.received == len(payload)
        rate = len(payload) / took / 1000
        assert 180 <= rate <= 220, rate
    finally:
        sink.stop()


def _wait(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_blackhole_is_half_open_then_the_client_is_reset(relay: Relay, upstream: Upstream) -> None:
    with _connect(relay.route(upstream.address)) as sock:
        sock.sendall(UPGRADE)  # a session: the relay watches what the server does with it
        _wait(lambda: upstream.received > 0)
        sock.recv(1024)
        _round_trips(sock, 2)
        assert _wait(lambda: relay.storm("blackhole", 1.0, seconds=0.6) == 1, 1)
        sock.sendall(b"lost\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(64)  # nothing comes back, and no FIN either
        assert upstream.received == len(UPGRADE) + 2 * len(b"ping 0000\n")  # the server never got "lost"
        assert upstream.closed == []  # nor learned anything
        sock.settimeout(2)
        with pytest.raises(ConnectionResetError):
            while sock.recv(64):
                pass
    # The server's side is a ghost, open until the server closes it.
    time.sleep(0.2)
    assert upstream.closed == []
    assert relay.stats.faults == {"blackhole": 1}
    upstream.conns[0].close()  # the server's heartbeat would do this
    assert _wait(lambda: relay.stats.records[0].server_closed_after_s is not None)
    assert relay.stats.records[0].server_closed_after_s >= 0.6


def test_freeze_holds_data_and_resumes(relay: Relay, upstream: Upstream) -> None:
    with _connect(relay.route(upstream.address)) as sock:
        _round_trips(sock, 1)
        assert _wait(lambda: relay.storm("freeze", 1.0, seconds=0.5) == 1, 1)
        sock.sendall(b"held\n")
        sock.settimeout(0.25)
        with pytest.raises(TimeoutError):
            sock.recv(64)
        assert upstream.received == len(b"ping 0000\n")
        sock.settimeout(3)
        assert sock.recv(64) == b"held\n"  # delivered late, not lost
        _round_trips(sock, 1)


@pytest.mark.parametrize(
    "storm",
    [{"kind": "freeze", "seconds": 0.3, "then": "close"}, {"kind": "reset"}],
    ids=["freeze_then_close", "reset_mid_session"],
)
def test_a_killed_app_or_a_reset_resets_both_sides(relay: Relay, upstream: Upstream, storm: dict) -> None:
    with _connect(relay.route(upstream.address)) as sock:
        _round_trips(sock, 1)
        kind, options = storm["kind"], {k: v for k, v in storm.items() if k != "kind"}
        assert _wait(lambda: relay.storm(kind, 1.0, **options) == 1, 1)
        sock.settimeout(3)
        with pytest.raises(ConnectionResetError):
            while sock.recv(64):
                pass
    assert _wait(lambda: upstream.closed != [])
    assert upstream.closed[0][0] == "reset"


def test_latency_spike_then_back(relay: Relay, upstream: Upstream) -> None:
    with _connect(relay.route(upstream.address)) as sock:
        before = statistics.median(_round_trips(sock, 5))
        assert _wait(lambda: relay.storm("latency_spike", 1.0, seconds=0.8, latency_ms=100) == 1, 1)
        during = _round_trips(sock, 2)
        assert min(during) - before >= 0.19
        time.sleep(0.8)
        after = statistics.median(_round_trips(sock, 5))
        assert after - before < 0.01


def test_fin_passes_after_slow_close(relay: Relay, upstream: Upstream) -> None:
    with _connect(relay.route(upstream.address, conditions=Conditions(slow_close_ms=300))) as sock:
        _round_trips(sock, 1)
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert _wait(lambda: upstream.closed != [])
        assert upstream.closed[0][0] == "fin"
        assert upstream.closed[0][1] - started >= 0.29


def test_storm_takes_its_share_of_the_routes(relay: Relay, upstream: Upstream) -> None:
    socks = [_connect(relay.route(upstream.address)) for _ in range(10)]
    try:
        assert _wait(lambda: relay.stats.connections == 10)
        time.sleep(0.1)
        assert relay.storm("reset", 0.3) == 3
        assert _wait(lambda: len(upstream.closed) == 3)
    finally:
        for s in socks:
            s.close()


def test_refused_upstream_resets_the_client(relay: Relay) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    address = free.getsockname()
    free.close()
    # The reset may land before the client's connect() returns (a quick relay) or at its first read.
    with pytest.raises(ConnectionResetError), _connect(relay.route(address)) as sock:
        sock.settimeout(3)
        sock.recv(64)
    assert relay.stats.upstream_failed == 1


def test_conditions_change_on_an_open_connection(relay: Relay, upstream: Upstream) -> None:
    route = relay.route(upstream.address)
    with _connect(route) as sock:
        before = statistics.median(_round_trips(sock, 5))
        relay.set_conditions(route, Conditions(latency_ms=30))  # a stage of the run begins
        time.sleep(0.05)
        during = statistics.median(_round_trips(sock, 5))
        relay.set_conditions(route, Conditions())
        time.sleep(0.05)
        after = statistics.median(_round_trips(sock, 5))
    assert during - before >= 0.057
    assert after - before < 0.01
