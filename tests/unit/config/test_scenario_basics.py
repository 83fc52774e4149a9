"""Scenario files: every bundled one is valid, and every mistake names the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.config.scenario import ScenarioError, bundled, load, parse_override, seconds

BUNDLED = {"smoke", "lobby-rush", "tick-degradation", "reconnect-storm", "replay-attack", "rate-limit-probe", "soak"}
MINIMAL = '[scenario]\nduration = "10s"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_every_bundled_scenario_is_valid_and_documented() -> None:
    names = {p.stem for p in bundled()}
    assert names >= BUNDLED
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    for path in bundled():
        scenario = load(path)
        assert scenario.gates, f"{path.name} declares gates"
        assert path.read_text().startswith("# "), f"{path.name} starts with a header comment"
        assert f"`{path.stem}`" in readme, f"README has a row for {path.stem}"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (MINIMAL + "[load]\nuserz = 5\n", "load.userz", "unknown key; allowed here:"),
        (MINIMAL + '[load]\nusers = "ten"\n', "load.users", "not a whole number"),
        (MINIMAL + "[load]\nusers = 0\n", "load.users", "must be >= 1"),
        (MINIMAL + '[player]\njoin_mode = "random"\n', "player.join_mode", "one of: quick, create, code"),
        (MINIMAL + '[player.reconnect]\nkind = "linear"\n', "player.reconnect.kind", "exponential"),
        (MINIMAL + '[target]\ndefects = ["ticket-reply"]\n', "target.defects", "ticket-replay"),
        (MINIMAL + '[target]\nurl = "ftp://x"\n', "target.url", "http://"),
        ('gates = ["tick.p5_hz >== 54"]\n' + MINIMAL, "gates[0]", "METRIC OP VALUE"),
        (MINIMAL + '[[gates]]\nexpr = "replay.accepted == 0"\nover = "soon"\n', "gates[0].over", "duration"),
        (MINIMAL + '[[events]]\nat = "5s"\nside = "moon"\n', "events[0].side", "client, server"),
        (MINIMAL + '[probes]\nreplay_kinds = ["ticket_reuse", "nope"]\n', "", "replay_kinds: unknown nope"),
        ('[scenario]\nname = "x"\n', "scenario.duration", "required"),
        (MINIMAL + "[[load.stages]]\nusers = 5\n", "load.stages[0].duration", "required"),
    ],
)
def test_mistakes_name_the_file_the_key_and_what_is_allowed(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert key in message
    assert words in message


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(write(tmp_path, "[scenario\nduration = 1"))


def test_set_overrides_any_value_before_validation(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[load]\nusers = 5\n")
    scenario = load(
        path,
        [
            parse_override("load.users=50"),
            parse_override("player.reconnect.kind=none"),
            parse_override('probes.cors_origins=["http://a.example"]'),
        ],
    )
    assert scenario.users == 50
    assert scenario.settings.reconnect.kind == "none"
    assert scenario.settings.probes.cors_origins == ("http://a.example",)
    with pytest.raises(ScenarioError, match=r"load\.users"):
        load(path, [parse_override("load.users=-1")])


def test_durations() -> None:
    assert [seconds(v) for v in (30, "30s", "2m", "1h", "500ms", 1.5)] == [30, 30, 120, 3600, 0.5, 1.5]
    with pytest.raises(ValueError):
        seconds("soon")
