"""A player of one's own, written only with the public API, as docs/harness.md §8 shows.

The locustfile imports nothing but ``loadtest``: subclassing ``loadtest.GamePlayer`` must bring
the ``--lt-*`` options and the harness, a flow step that returns ``loadtest.Attempt`` must be
retried by the reconnect policy, ``post_json`` must count its requests, and Locust must run the
subclass alone (``GamePlayer`` itself is not in the file's namespace).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from tests.conftest import GENEROUS_LIMITS
from tests.locust_run import assert_clean, run_locust

pytestmark = pytest.mark.slow

LOCUSTFILE = """
import loadtest


class LoggingProtocol(loadtest.Protocol):
    def token_request(self, name):
        path, body = super().token_request(name)
        return path, {**body, "name": "mine-" + name}


class MyPlayer(loadtest.GamePlayer):
    refused_once = False

    def make_protocol(self):
        return LoggingProtocol(self.settings.protocol)

    def login(self):
        if not self.refused_once:
            # Our own precondition is not met yet: a failed step, retried by the policy.
            self.refused_once = True
            return loadtest.Attempt(reason="not_yet", retry_after=0.1)
        path, body = self.protocol.token_request(self.name_)
        grant = self.post_json(path, body, parse=self.protocol.parse_token)
        if isinstance(grant, loadtest.Attempt):
            return grant
        assert isinstance(grant, loadtest.TokenGrant)
        self.token = grant
        return grant
"""


def test_a_public_api_player_runs_alone_and_its_failed_step_is_retried(tmp_path: Path) -> None:
    locustfile = tmp_path / "mygame_locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    users = 4
    policy = ("--lt-reconnect-base", "0.2", "--lt-reconnect-jitter", "0,0.1")
    extra = ("--lt-sessions-per-user", "1", "--lt-session-length", "2", *policy)
    with BackendProcess(args=GENEROUS_LIMITS) as backend:
        result = run_locust(
            backend.url,
            tmp_path / "run",
            users=users,
            spawn_rate=users,
            run_time="10s",
            locustfile=locustfile,
            extra=extra,
        )
    assert_clean(result)
    assert result.returncode == 0, result.stderr[-3000:]
    spawned = [line for line in result.stderr.splitlines() if "All users spawned" in line]
    assert spawned and f'"MyPlayer": {users}' in spawned[0] and "GamePlayer" not in spawned[0], spawned
    s = result.summary
    # One session per player: each one's first login was refused by us, the second went through.
    assert s["ws"]["sessions_opened"] == users
    assert s["ws"]["ended"] == {"client": users}
    # post_json went through Locust's client and the player's accounting: one token per player.
    assert s["http"]["token"]["count"] == users
    assert s["http"]["join"]["count"] == users
    assert result.target_delta("gamebackend_tickets_consumed_total") == users
