"""`loadtest check` against the reference backend: a working flow is exit 0 with every step shown
and no secret in full; a wrong `[protocol]` key stops the walk at its step, naming the key and the
field the reply has instead; no target is a usage error, a target that does not answer exit 3. On
a backend of another shape (tests/fakes/other_shape.py), following only what check says reaches a
working flow, which the file `loadtest init` writes keeps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest.backend import BackendProcess
from loadtest.cli.check import walk
from loadtest.cli.main import main
from loadtest.config.scenario import from_table, load


def check(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``loadtest check ARGS`` in this process (its walk makes real requests and a real WebSocket)."""
    with pytest.raises(SystemExit) as done:
        main(["check", *args])
    out, err = capsys.readouterr()
    return int(done.value.code), out, err


#: Anything that looks like a credential: a JWT, or a long run of URL-safe characters (tickets).
SECRET_SHAPED = re.compile(r"eyJ[\w-]+\.[\w-]+|[A-Za-z0-9_-]{28,}")


def test_a_working_flow_is_exit_0_with_shapes_and_no_secret(
    shared_backend: BackendProcess, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = check(capsys, "--target", shared_backend.url, "--seconds", "1")
    assert code == 0, out + err
    for step in ("login", "join", "connect", "play", "leave", "replay"):
        assert re.search(rf"^  ok   \d {step}\b", out, re.MULTILINE), out
    assert "token: str (masked" in out and "ticket: str (masked" in out
    assert re.search(r"tick: \{type: \"tick\", tick: int, ts: float", out), out
    assert "/connect?ticket=..." in out and "tickets are single-use" in out
    assert not SECRET_SHAPED.search(out), SECRET_SHAPED.search(out)


def test_a_wrong_field_name_names_the_key_and_the_candidate(
    shared_backend: BackendProcess, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = check(capsys, "--target", shared_backend.url, "--set", "protocol.token_field=access_token")
    assert code == 1, out + err
    assert "FAIL 1 login" in out and " 2 join" not in out, "the walk stops where it fails"
    assert "no `access_token` in the reply; it has `token`" in out
    assert 'set `protocol.token_field = "token"`' in out
    assert not SECRET_SHAPED.search(out)


def test_a_wrong_connect_setting_is_named_at_its_step(
    shared_backend: BackendProcess, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = check(capsys, "--target", shared_backend.url, "--set", "protocol.ticket_param=seat")
    assert code == 1
    assert "FAIL 3 connect" in out and "refused 403" in out
    assert "`protocol.ticket_param` (now 'seat')" in out


def test_no_target_is_a_usage_error_and_silence_is_exit_3(capsys: pytest.CaptureFixture) -> None:
    code, out, err = check(capsys)
    assert code == 2 and out == ""
    assert err.strip() == "loadtest check: no target: pass --target URL (or set target.url in the scenario)"
    code, _, err = check(capsys, "--set", "protocol.kind=nope", "--target", "http://127.0.0.1:1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "protocol.kind" in err
    code, out, _ = check(capsys, "--target", "http://127.0.0.1:1")
    assert code == 3 and "no answer" in out


def test_check_finds_every_key_of_a_backend_of_another_shape_and_init_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the reference defaults to a working flow on tests/fakes/other_shape.py by following
    only what check says: a value it names is taken as said; a key it names without a value (a
    path, the auth scheme) is looked up as a user would, in the backend's own docs (its PROTOCOL)."""
    from tests.fakes.other_shape import PROTOCOL
    from tests.integration.test_other_shape import other_shape

    found: dict[str, str] = {}
    with other_shape() as url:
        for _ in range(2 * len(PROTOCOL)):  # bounded: each round sets one key or ends
            scenario = from_table(
                "test", {"scenario": {"duration": "1s"}}, [(f"protocol.{k}", v) for k, v in found.items()]
            )
            walked = walk(url, scenario.settings, seconds=0.6)
            hints = [h for s in walked.steps for h in s.hints if "nominal tick rate" not in h]
            if walked.flow_works and not hints:
                break
            said = re.search(r"set `protocol\.(\w+) = \"([^\"]*)\"`", hints[0])
            if said:
                key, value = said.groups()
            else:
                key = next(k for k in re.findall(r"`protocol\.(\w+)`", hints[0]) if k not in found)
                value = PROTOCOL[key]
            assert key not in found, f"check asked for {key} twice: {hints}"
            found[key] = value
        else:
            pytest.fail(f"check never reached a working flow; it had found {found}")
        assert all(PROTOCOL[k] == v for k, v in found.items()), "every value check named is the backend's own"
        assert {"token_field", "ticket_field", "type_field", "tick_type", "tick_field", "timestamp_field"} <= set(found)
        # Keys the flow works without but a run reads (the ticket's lifetime for ticket_expired,
        # the player's id, the room's code) are named too, before "the flow works" is said.
        assert {"expires_in_field", "player_id_field", "room_field"} <= set(found)

        monkeypatch.chdir(tmp_path)
        with pytest.raises(SystemExit) as done:
            main(["init", *(a for k, v in found.items() for a in ("--set", f"protocol.{k}={v}"))])
        assert done.value.code == 0
        written = load(tmp_path / "smoke.toml")
        assert all(getattr(written.settings.protocol, k) == v for k, v in found.items())
        assert walk(url, written.settings, seconds=1.0).flow_works, "the file init wrote works as it is"
