"""``loadtest serve`` as an operator runs it: what it prints, how it stops, how it refuses bad config."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from loadtest.backend import BackendProcess
from tests.client import GameClient, next_of_type, wait_until

SERVE = [sys.executable, "-m", "loadtest", "serve", "--port", "0"]
#: Set in the environment of every serve this module runs; game servers inherit it, so the
#: processes a run left behind can be found without mistaking anyone else's for them.
MARKER = "LOADTEST_TEST_RUN"


def serve(*args: str, marker: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, MARKER: marker or uuid.uuid4().hex}
    return subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


def processes_marked(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if p.environ().get(MARKER) == marker and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


def game_servers_of(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "loadtest.backend.gameserver" in p.cmdline()]


@pytest.fixture
def backend(start_backend: Callable[..., BackendProcess]) -> BackendProcess:
    """A fresh backend per test: these tests signal and kill it."""
    return start_backend("--game-servers", "2", generous=False)


def test_serve_prints_its_url_and_admin_token(backend: BackendProcess) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", backend.url)
    assert wait_until(lambda: any("Press Ctrl-C" in line for line in backend.output))
    # A token given (by environment, as BackendProcess does) is not printed: output ends up in logs.
    assert any("admin token: " in line and "(as given)" in line for line in backend.output)
    assert not any(backend.admin_token in line for line in backend.output)
    assert any("game servers: 2" in line and "defects: none" in line for line in backend.output)
    r = GameClient(backend.url).get("/admin/api/stats", headers={"Authorization": f"Bearer {backend.admin_token}"})
    assert r.status_code == 200, "the token given by environment is the one that works"


def test_serve_prints_the_admin_token_it_generated() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LOADTEST_ADMIN_TOKEN", "LOADTEST_JWT_SECRET")}
    proc = subprocess.Popen([*SERVE, "--game-servers", "1"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[0].split("listening on ")[1].strip()
        token = next(line for line in lines if "admin token:" in line).split("admin token: ")[1].split()[0]
        r = GameClient(url).get("/admin/api/stats", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, "the printed token is the one that works"
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_it_cleanly_with_its_game_servers(backend: BackendProcess, sig: signal.Signals) -> None:
    assert backend.process is not None and backend.pid is not None
    game_servers = game_servers_of(backend.pid)
    assert len(game_servers) == 2
    c = GameClient(backend.url)
    _, joined = c.ticket("witness")
    with c.connect(joined["ticket"]) as ws:
        next_of_type(ws, "welcome")
        backend.process.send_signal(sig)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(1000):
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001, "players are told it is going away"
    assert backend.process.wait(timeout=20) == 0
    _, alive = psutil.wait_procs(game_servers, timeout=10)
    assert alive == []
    assert wait_until(lambda: "stopping..." in backend.output)
    assert "Traceback" not in backend.stderr_text()


def test_game_servers_exit_even_if_serve_is_killed(backend: BackendProcess) -> None:
    """SIGKILL gives serve no chance to clean up; its game servers see stdin close and leave."""
    assert backend.pid is not None
    game_servers = game_servers_of(backend.pid)
    assert len(game_servers) == 2
    os.kill(backend.pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(game_servers, timeout=15)
    assert alive == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--game-servers", "0"), "game_servers"),
        (("--game-servers", "65"), "game_servers"),
        (("--defect", "no-such-defect"), "no-such-defect"),
        (("--tick-rate", "0"), "--tick-rate"),
        (("--tick-rate", "fast"), "--tick-rate"),
        (("--port", "70000"), "port"),
        (("--room-capacity", "0"), "room_capacity"),
        (("--substeps", "-1"), "substeps"),
        (("--token-burst", "0"), "--token-burst"),
        (("--ticket-ttl", "-5"), "--ticket-ttl"),
        (("--trusted-proxy", "not-an-ip"), "trusted_proxies"),
        (("--admin-token", "short"), "admin_token"),
        (("--tls-cert", "cert.pem"), "tls_key"),
        (("--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"), "tls_cert"),
        (("--no-such-flag",), "--no-such-flag"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_bad_config_exits_2_with_a_message_naming_it(args: tuple[str, ...], says: str) -> None:
    marker = uuid.uuid4().hex
    result = serve(*args, marker=marker)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stdout
    assert processes_marked(marker) == [], "nothing is left running"


def test_a_port_in_use_exits_3_and_leaves_no_game_server_behind() -> None:
    marker = uuid.uuid4().hex
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = serve("--game-servers", "2", "--port", port, marker=marker)
    assert result.returncode == 3, result.stderr
    assert "cannot listen" in result.stderr and port in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_marked(marker) == [], "the game servers it had started are stopped"


@pytest.mark.slow
def test_check_2_walks_the_protocol_and_prints_ok() -> None:
    result = serve("--check", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("self-check:") and "->" in line]
    assert line.endswith("-> OK")
    assert "ticket replay refused" in line
    rate = float(re.search(r"at ([\d.]+) Hz", line).group(1))  # type: ignore[union-attr]
    assert abs(rate - 60) <= 3
    assert int(re.search(r"up to #(\d+)", line).group(1)) > 0  # type: ignore[union-attr]


@pytest.mark.slow
def test_check_fails_against_a_defect_it_looks_for() -> None:
    result = serve("--check", "1", "--defect", "ticket-replay")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ticket replay ACCEPTED -> FAILED" in result.stdout
