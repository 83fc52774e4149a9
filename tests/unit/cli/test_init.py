"""`loadtest init` writes a scenario with every `[protocol]` key of its kind listed, explained and
commented (the keys from the protocol's own fields), the values asked for set, and checks it
before writing; it never overwrites a file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from loadtest.adapters.protocol import ProtocolConfig
from loadtest.cli.init import protocol_keys
from loadtest.cli.main import main
from loadtest.config.scenario import bundled, load


def init(monkeypatch: pytest.MonkeyPatch, folder: Path, *args: str) -> int:
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) as done:
        main(["init", *args])
    return int(done.value.code)


def test_every_protocol_key_is_listed_with_its_meaning_and_the_file_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert (
        init(monkeypatch, tmp_path, "--set", "protocol.token_field=access_token", "--set", "protocol.tick_type=state")
        == 0
    )
    written = tmp_path / "smoke.toml"
    assert str(written) in capsys.readouterr().out
    text = written.read_text()
    lines = text.splitlines()
    for f in dataclasses.fields(ProtocolConfig):
        if f.name in ("token_field", "tick_type"):
            continue
        if not isinstance(f.default, str):
            continue  # a table-valued key is listed by its scenario model, checked below
        i = lines.index(f"# {f.name} = {f.default!r}".replace("'", '"'))
        assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 10, f"{f.name} has no meaning above it"
    assert 'token_field = "access_token"' in lines and 'tick_type = "state"' in lines
    scenario = load(written)
    assert scenario.settings.protocol.token_field == "access_token"
    assert scenario.settings.protocol.tick_type == "state"
    smoke = load(next(p for p in bundled() if p.stem == "smoke"))
    assert scenario.gates == smoke.gates and scenario.users == smoke.users, "the rest is the source's"


def test_every_key_of_every_kind_has_a_meaning() -> None:
    for kind in ("reference", "colyseus"):
        keys = protocol_keys(kind)
        assert keys and all(meaning for _, _, meaning in keys), [k for k, _, m in keys if not m]
    assert {k for k, _, _ in protocol_keys("reference")} >= set(ProtocolConfig.field_names()) - {"steps"}


def test_a_colyseus_scenario_keeps_its_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert init(monkeypatch, tmp_path, "--from", "colyseus-smoke", "--out", "mine.toml") == 0
    source = load(next(p for p in bundled() if p.stem == "colyseus-smoke"))
    mine = load(tmp_path / "mine.toml")
    assert mine.settings.protocol_options == source.settings.protocol_options
    assert "# auth_path = " in (tmp_path / "mine.toml").read_text(), "a key the source left out is listed"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--set", "load.users=5"), "init sets [protocol] keys only"),
        (("--set", "protocol.tokn_field=x"), "unknown key; allowed here: ack_field"),
        (("--set", "protocol.kind=nope"), "unknown protocol kind 'nope'"),
        (("--set", "protocol.kind=colyseus"), "protocol.room: required"),
        (("--from", "no-such-scenario"), "no scenario file 'no-such-scenario'"),
    ],
)
def test_a_bad_request_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: tuple[str, ...], words: str
) -> None:
    assert init(monkeypatch, tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not list(tmp_path.iterdir())


def test_an_existing_file_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "smoke.toml").write_text("# mine\n")
    assert init(monkeypatch, tmp_path) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "smoke.toml").read_text() == "# mine\n"
