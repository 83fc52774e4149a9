"""Scenario files through their models: every mistake is one line naming the file, the key (array
items by index) and what is allowed; ``--set`` reaches array items; ``loadtest run`` flags share the
file's ranges and defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest.adapters import colyseus
from loadtest.cli.main import build_parser, main
from loadtest.config.scenario import LoadTable, ScenarioError, load, parse_override

MINIMAL = '[scenario]\nduration = "10s"\n'
STAGED = (
    'gates = ["tick.p5_hz >= 54", {expr = "replay.accepted == 0", over = "5s"}]\n'
    + MINIMAL
    + '[[load.stages]]\nduration = "5s"\nusers = 5\n'
    + '[[load.stages]]\nduration = "2m"\nusers = 20\nspawn_rate = 4\n'
)
COLYSEUS = MINIMAL + '[target]\nurl = "http://127.0.0.1:1"\n[protocol]\nkind = "colyseus"\nroom = "arena"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


def refusal(path: Path, overrides: list[str] = ()) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(path, [parse_override(o) for o in overrides])
    assert "\n" not in str(info.value), "one line"
    return info.value


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('[[load.stages]]\nduration = "5s"\nusers = 5\n[[load.stages]]\nduration = "5s"\nusers = -1\n',
         "load.stages[1].users", "must be >= 0, got -1"),
        ('[[load.stages]]\nduration = "5s"\nusers = true\n', "load.stages[0].users", "True is not a whole number"),
        ('[[load.stages]]\nduration = "soon"\nusers = 1\n', "load.stages[0].duration", "is not a duration"),
        ("[load]\nworkers = 65\n", "load.workers", "must be <= 64, got 65"),
        ("[load]\nstages = 3\n", "load.stages", "must be an array"),
        ('[[events]]\nat = "1s"\n[[events]]\nside = "client"\n', "events[1].at", "required"),
        ('[[events]]\nat = "1s"\nkind = "stall"\nseconds = 90\n', "events[0].seconds", "must be <= 60"),
        ('[[events]]\nat = "1s"\nkind = "quake"\n', "events[0].kind", "one of: storm, stall"),
        ("[probes]\nrate_limit_steps = [5, 2000]\n", "probes.rate_limit_steps[1]", "must be <= 1000"),
        ("[probes]\nrate_limit_steps = []\n", "probes.rate_limit_steps", "at least 1"),
        ('[target]\ndefects = ["ticket-replay", "nope"]\n', "target.defects[1]", "one of: "),
        ("[target.backend]\ngame_servers = 1.5\n", "target.backend.game_servers", "not a whole number"),
        ('[player]\nsource_addresses = ["192.0.2.1"]\n', "player.source_addresses", "not a loopback address"),
        ('[player]\njoin_mode = "code"\n', "player.room", "needs a room code"),
        ("[player.reconnect]\nbase = 10\ncap = 5\n", "player.reconnect.cap", "must be >= base"),
        ("[player.reconnect]\njitter = [1]\n", "player.reconnect.jitter", "[min, max]"),
        ("[ticks]\nnominal_hz = 0\n", "ticks.nominal_hz", "must be > 0"),
        ("[player]\nreconnect = 3\n", "player.reconnect", "must be a table"),
    ],
)  # fmt: skip
def test_a_mistake_names_the_file_the_key_with_its_index_and_what_is_allowed(
    tmp_path: Path, body: str, key: str, words: str
) -> None:
    path = write(tmp_path, MINIMAL + body)
    error = refusal(path)
    assert error.key == key
    assert str(error).startswith(f"{path}: {key}: ")
    assert words in str(error)


def test_a_gate_that_does_not_parse_is_named_by_its_index(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, 'gates = ["tick.p5_hz >= 54", "tick.p5_hz >== 54"]\n' + MINIMAL))
    assert error.key == "gates[1]" and "METRIC OP VALUE" in str(error)


@pytest.mark.parametrize(
    ("body", "key", "allowed"),
    [
        ("[load]\nuserz = 5\n", "load.userz", ["users", "spawn_rate", "workers", "stages"]),
        ('[[load.stages]]\nduration = "1s"\nusers = 1\nramp = 2\n', "load.stages[0].ramp", ["duration", "users"]),
        ("[player]\nclose_timeout = 3\n", "player.close_timeout", ["session_length", "reconnect", "source_addresses"]),
        ("[ticks]\nnominal_tick_rate = 3\n", "ticks.nominal_tick_rate", ["nominal_hz", "clock_offset"]),
        ("[probes]\nreplay_rate_s = 1\n", "probes.replay_rate_s", ["replay_rate", "seat_hoarding"]),
        ('[[gates]]\nexpr = "replay.accepted == 0"\nwindow = 3\n', "gates[0].window", ["over", "delay"]),
        ("[nonsense]\na = 1\n", "nonsense", ["scenario", "load", "gates", "protocol"]),
    ],
)
def test_an_unknown_key_lists_the_keys_allowed_there(tmp_path: Path, body: str, key: str, allowed: list[str]) -> None:
    error = refusal(write(tmp_path, MINIMAL + body))
    assert error.key == key
    listed = str(error).split("allowed here: ", 1)[1].split(", ")
    assert set(allowed) <= set(listed)
    assert key.rsplit(".", 1)[-1] not in listed


def test_durations_keep_their_units_everywhere(tmp_path: Path) -> None:
    scenario = load(
        write(tmp_path, STAGED + '[player]\nsession_length = "500ms"\n[[events]]\nat = "1m"\nkind = "stall"\n')
    )
    assert [s.duration for s in scenario.stages] == [5.0, 120.0]
    assert scenario.duration == 125.0 and scenario.users == 20
    assert scenario.settings.session_length == 0.5
    assert scenario.settings.storms[0].at == 60.0 and scenario.settings.storms[0].side == "stall"
    assert scenario.gates[1].over == 5.0


def test_set_changes_one_array_item(tmp_path: Path) -> None:
    path = write(tmp_path, STAGED)
    scenario = load(
        path,
        [
            parse_override("load.stages[1].users=50"),
            parse_override('gates[0].expr="tick.p5_hz >= 50"'),  # a gate written as a string
            parse_override('gates[0].over="10s"'),
            parse_override("gates[1]=ws.unexpected_disconnects == 0"),  # the whole item
        ],
    )
    assert [(s.duration, s.users, s.spawn_rate) for s in scenario.stages] == [(5.0, 5, 10.0), (120.0, 50, 4.0)]
    assert [(g.expression, g.over) for g in scenario.gates] == [
        ("tick.p5_hz >= 50", 10.0),
        ("ws.unexpected_disconnects == 0", None),
    ]
    assert load(path).stages[1].users == 20, "the file itself is untouched"


def test_set_on_an_item_is_validated_like_the_file(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, STAGED), ["load.stages[1].users=-3"])
    assert error.key == "load.stages[1].users" and "must be >= 0" in str(error)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("load.stages[2].users=1", "index 2 is out of range: load.stages has items 0..1"),
        ("gates[7].expr=x", "index 7 is out of range: gates has items 0..1"),
        ("events[0].at=1", "index 0 is out of range: events has no items"),
        ("load.users[0]=1", "load.users is not an array"),
        ("scenario.duration.unit=1", "scenario.duration is a value, not a table"),
        ("load.stages[x].users=1", "name[index]"),
    ],
)
def test_set_names_an_impossible_place(tmp_path: Path, override: str, words: str) -> None:
    path = write(tmp_path, STAGED.replace("[[load.stages]]", "[load]\nusers = 3\n[[load.stages]]", 1))
    error = refusal(path, [override])
    assert error.path == "--set" and error.key == override.split("=")[0]
    assert words in str(error)


def test_loadtest_run_reports_a_bad_set_in_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, STAGED)
    with pytest.raises(SystemExit) as done:
        main(["run", str(path), "--out", str(tmp_path / "out"), "--set", "load.stages[5].users=1"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.strip() == "loadtest run: --set: load.stages[5].users: index 5 is out of range: load.stages has items 0..1"
    )
    assert not (tmp_path / "out").exists(), "nothing was started"


def _help(flag: str) -> str:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    action = next(a for a in run._actions if flag in a.option_strings)
    return action.help or ""


def test_run_flags_take_their_range_and_default_from_the_scenario_model(tmp_path: Path) -> None:
    # The default a scenario without [load] gets is the one --users's help names.
    default_users = load(write(tmp_path, MINIMAL)).users
    assert re.search(rf"else {default_users}\b", _help("--users"))
    assert LoadTable.model_fields["users"].default == default_users
    assert "1..64" in _help("--workers") and "else 1)" in _help("--workers")


@pytest.mark.parametrize(
    ("flag", "value", "key"), [("--workers", "65", "load.workers"), ("--users", "0", "load.users")]
)
def test_a_run_flag_is_refused_with_the_words_the_file_gets(
    tmp_path: Path, capsys: pytest.CaptureFixture, flag: str, value: str, key: str
) -> None:
    table, name = key.split(".")
    file_error = refusal(write(tmp_path, f"{MINIMAL}[{table}]\n{name} = {value}\n"))
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["run", "smoke", flag, value])
    assert done.value.code == 2
    said = str(file_error).split(f"{key}: ", 1)[1].split(", got")[0]
    assert f"argument {flag}: {said}" in capsys.readouterr().err


def test_run_flag_durations_use_the_file_s_units() -> None:
    args = build_parser().parse_args(["run", "smoke", "--duration", "2m", "--spawn-rate", "2.5"])
    assert (args.duration, args.spawn_rate) == (120.0, 2.5)


def test_colyseus_options_have_one_set_of_defaults(tmp_path: Path) -> None:
    settings = load(write(tmp_path, COLYSEUS)).settings
    declared = {name: option.default for name, option in colyseus.ADAPTER.options.items() if not option.required}
    assert settings.protocol_options == {"room": "arena", **declared}
    options = colyseus.ColyseusOptions.from_settings(settings)
    assert (options.method, options.patch_rate, options.ping_every) == (
        declared["method"],
        declared["patch_rate"],
        declared["ping_every"],
    )
    assert settings.nominal_tick_rate == pytest.approx(1 / declared["patch_rate"])


def test_an_impossible_colyseus_patch_rate_is_a_scenario_error(tmp_path: Path) -> None:
    # It used to reach 1 / patch_rate and end in a traceback.
    error = refusal(write(tmp_path, COLYSEUS + "patch_rate = 0\n"))
    assert error.key == "protocol.patch_rate" and "must be > 0" in str(error)
