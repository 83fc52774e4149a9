"""`loadtest check` against the reference backend: a working flow is exit 0 with every step shown
and no secret in full; a wrong `[protocol]` key stops the walk at its step, naming the key and the
field the reply has instead; no target is a usage error, a target that does not answer exit 3."""

from __future__ import annotations

import re

from loadtest.backend import BackendProcess
from tests.locust_run import loadtest

#: Anything that looks like a credential: a JWT, or a long run of URL-safe characters (tickets).
SECRET_SHAPED = re.compile(r"eyJ[\w-]+\.[\w-]+|[A-Za-z0-9_-]{28,}")


def test_a_working_flow_is_exit_0_with_shapes_and_no_secret(shared_backend: BackendProcess) -> None:
    result = loadtest("check", "--target", shared_backend.url, "--seconds", "1", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in ("login", "join", "connect", "play", "leave", "replay"):
        assert re.search(rf"^  ok   \d {step}\b", out, re.MULTILINE), out
    assert "token: str (masked" in out and "ticket: str (masked" in out
    assert re.search(r"tick: \{type: \"tick\", tick: int, ts: float", out), out
    assert "/connect?ticket=..." in out and "tickets are single-use" in out
    assert not SECRET_SHAPED.search(out), SECRET_SHAPED.search(out)


def test_a_wrong_field_name_names_the_key_and_the_candidate(shared_backend: BackendProcess) -> None:
    result = loadtest("check", "--target", shared_backend.url, "--set", "protocol.token_field=access_token", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL 1 login" in result.stdout and " 2 join" not in result.stdout, "the walk stops where it fails"
    assert "no `access_token` in the reply; it has `token`" in result.stdout
    assert 'set `protocol.token_field = "token"`' in result.stdout
    assert not SECRET_SHAPED.search(result.stdout)


def test_a_wrong_connect_setting_is_named_at_its_step(shared_backend: BackendProcess) -> None:
    result = loadtest("check", "--target", shared_backend.url, "--set", "protocol.ticket_param=seat", timeout=60)
    assert result.returncode == 1
    assert "FAIL 3 connect" in result.stdout and "refused 403" in result.stdout
    assert "`protocol.ticket_param` (now 'seat')" in result.stdout


def test_no_target_is_a_usage_error_and_silence_is_exit_3() -> None:
    missing = loadtest("check", timeout=60)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == "loadtest check: no target: pass --target URL (or set target.url in the scenario)"
    bad = loadtest("check", "--set", "protocol.kind=nope", "--target", "http://127.0.0.1:1", timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "protocol.kind" in bad.stderr
    silent = loadtest("check", "--target", "http://127.0.0.1:1", timeout=60)
    assert silent.returncode == 3 and "no answer" in silent.stdout
