"""Player settings and the ``--lt-*`` options: one model, its ranges and defaults shared by the
options' types and help, values from Locust's web form (strings) converted, and every refusal
naming the setting or the option."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtest.config import options
from loadtest.config.model import field_info
from loadtest.config.settings import SETTINGS_ENV, PlayerSettings, ProbeSettings, SettingsError, Storm
from loadtest.runtime.backoff import PolicyError, ReconnectPolicy


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    """The options as Locust's parser gets them (plugin.py calls the same function)."""
    parser = argparse.ArgumentParser(prog="locust", exit_on_error=False)
    options.add_arguments(parser)
    return parser


def form(**values: object) -> SimpleNamespace:
    """Parsed options as Locust's web form leaves them: every value a string, unset ones None."""
    blank = {option.dest: None for option in options.LT_OPTIONS}
    return SimpleNamespace(**{**blank, "lt_insecure": False, **values})


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: PlayerSettings(input_rate=0), SettingsError, "player.input_rate: must be > 0, got 0"),
        (lambda: PlayerSettings(join_mode="random"), SettingsError, "player.join_mode: 'random' is not allowed"),
        (lambda: PlayerSettings(join_mode="code"), SettingsError, "player.room: join mode 'code' needs a room"),
        (lambda: PlayerSettings(degradation_threshold=2), SettingsError, "ticks.degradation_threshold: must be <= 1"),
        (lambda: PlayerSettings(storms=({"at": -1},)), SettingsError, "events[0].at: must be >= 0"),
        (lambda: ProbeSettings(race_sockets=1), SettingsError, "probes.race_sockets: must be >= 2"),
        (lambda: ProbeSettings(rate_limit_steps=(1, 5000)), SettingsError, "rate_limit_steps[1]: must be <= 1000"),
        (lambda: Storm(at=1, fraction=0), SettingsError, "storm.fraction: must be > 0"),
        (lambda: ReconnectPolicy(multiplier=11), PolicyError, "multiplier: must be <= 10"),
        (lambda: PlayerSettings(protocol_kind="colyseus"), SettingsError, "protocol.room: required"),
        (lambda: PlayerSettings.from_dict({"reconnect": {"bsae": 1}}), SettingsError, "player.reconnect.bsae: unknown"),
    ],
)  # fmt: skip
def test_an_impossible_setting_names_its_key(make: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        make()  # type: ignore[operator]
    assert words in str(info.value)


def test_replace_checks_the_new_values() -> None:
    settings = PlayerSettings()
    assert settings.replace(out_dir="x", stages=((5.0, 2, 1.0),)).stages == ((5.0, 2, 1.0),)
    with pytest.raises(SettingsError, match=r"player\.input_rate"):
        settings.replace(input_rate=-1)


def test_settings_travel_as_json_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = PlayerSettings(
        session_length="2m",
        reconnect=ReconnectPolicy(kind="full", jitter_min=0, jitter_max=0.2),
        probes=ProbeSettings(replay_kinds=("ticket_reuse",), rate_limit_steps=(1, 2)),
        storms=(Storm.parse("at=10,side=client,fraction=0.5"),),
        protocol_kind="colyseus",
        protocol_options={"room": "arena"},
        stages=((5.0, 3, 1.0),),
    )
    path = tmp_path / "settings.json"
    path.write_text(settings.to_json())
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    loaded = PlayerSettings.load()
    assert loaded == settings
    assert loaded.session_length == 120.0 and loaded.storms[0].side == "client"
    assert loaded.protocol_options["method"] == "joinOrCreate", "the adapter's defaults are filled in"


def test_options_as_the_command_line_gives_them(parser: argparse.ArgumentParser) -> None:
    args = parser.parse_args(
        [
            "--lt-session-length", "5", "--lt-reconnect", "none", "--lt-reconnect-jitter", "0.2,0.3",
            "--lt-storm", "at=3,side=client", "--lt-storm", "at=9,side=stall,seconds=1",
            "--lt-rate-limit-steps", "1,2.5", "--lt-cors-origin", "http://a.example", "--lt-insecure",
            "--lt-source-addresses", "127.0.0.2-127.0.0.4",
        ]
    )  # fmt: skip
    s = PlayerSettings().with_options(args)
    assert s.session_length == 5.0 and s.reconnect.kind == "none" and s.insecure
    assert (s.reconnect.jitter_min, s.reconnect.jitter_max) == (0.2, 0.3)
    assert [(st.at, st.side) for st in s.storms] == [(3.0, "client"), (9.0, "stall")]
    assert s.probes.rate_limit_steps == (1.0, 2.5) and s.probes.cors_origins == ("http://a.example",)
    assert s.source_addresses == ("127.0.0.2", "127.0.0.3", "127.0.0.4")


def test_options_from_the_web_form_arrive_as_strings_and_are_converted() -> None:
    s = PlayerSettings().with_options(
        form(lt_sessions_per_user="2", lt_think_time="500ms", lt_replay_kinds="ticket_reuse,ticket_race")
    )
    assert (s.sessions_per_user, s.think_time) == (2, 0.5)
    assert s.probes.replay_kinds == ("ticket_reuse", "ticket_race")


def test_unset_options_leave_the_settings_file_alone() -> None:
    settings = PlayerSettings(session_length=7, probes=ProbeSettings(replay_rate=2))
    assert settings.with_options(form()) is settings


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"lt_session_length": "abc"}, "--lt-session-length: 'abc' is not a duration"),
        ({"lt_sessions_per_user": "2.5"}, "--lt-sessions-per-user: '2.5' is not a whole number"),
        ({"lt_storm": ["at=1", "at=3,side=moon"]}, "--lt-storm: [1].side: 'moon' is not allowed"),
        ({"lt_storm": ["side=client"]}, "--lt-storm: [0].at: required"),
        ({"lt_reconnect_jitter": "1,0.5"}, "--lt-reconnect-jitter: must be >= jitter_min"),
        ({"lt_source_addresses": "192.0.2.1"}, "--lt-source-addresses: 192.0.2.1 is not a loopback address"),
        ({"lt_replay_kinds": ["nope"]}, "--lt-replay-kinds: unknown nope"),
        ({"lt_reconnect_base": "40"}, "player.reconnect.cap (--lt-reconnect-cap): must be >= base (40 s)"),
        ({"lt_join_mode": "code"}, "player.room (--lt-room): join mode 'code' needs a room code"),
    ],
)
def test_a_bad_option_names_the_option(values: dict, words: str) -> None:
    with pytest.raises(SettingsError) as info:
        PlayerSettings().with_options(form(**values))
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_the_command_line_refuses_what_the_setting_refuses(parser: argparse.ArgumentParser) -> None:
    with pytest.raises(argparse.ArgumentError, match="must be <= 10"):
        parser.parse_args(["--lt-reconnect-multiplier", "11"])
    with pytest.raises(argparse.ArgumentError, match="invalid choice"):
        parser.parse_args(["--lt-join-mode", "random"])
    with pytest.raises(PolicyError, match="must be <= 10"):
        ReconnectPolicy(multiplier=11)


def test_option_help_shows_the_setting_s_default_and_range(parser: argparse.ArgumentParser) -> None:
    helps = {a.option_strings[0]: a.help or "" for a in parser._actions if a.option_strings}
    for option in options.LT_OPTIONS:
        if "help" not in option.extra:
            assert helps[option.flag].startswith(field_info(PlayerSettings, option.path).description), option.flag
    defaults = PlayerSettings()
    assert helps["--lt-session-length"].endswith(f"(> 0; default {defaults.session_length:g})")
    assert helps["--lt-reconnect-max-attempts"].endswith(f"(>= 1; default {defaults.reconnect.max_attempts})")
    assert helps["--lt-reconnect-multiplier"].endswith(f"(> 1, <= 10; default {defaults.reconnect.multiplier:g})")
    assert helps["--lt-replay-rate"].endswith(f"(0..50; default {defaults.probes.replay_rate:g})")
    steps = ",".join(f"{v:g}" for v in defaults.probes.rate_limit_steps)
    assert helps["--lt-rate-limit-steps"].endswith(f"(default {steps})")
    jitter = f"{defaults.reconnect.jitter_min:g},{defaults.reconnect.jitter_max:g}"
    assert helps["--lt-reconnect-jitter"].endswith(f"(default {jitter})")


def test_every_option_is_unset_by_default(parser: argparse.ArgumentParser) -> None:
    """So a plain ``locust`` run keeps what the settings file says."""
    parsed = vars(parser.parse_args([]))
    assert all(value in (None, False) for value in parsed.values()), parsed
    assert set(parsed) == {option.dest for option in options.LT_OPTIONS}


def test_a_settings_file_with_an_unknown_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({**json.loads(PlayerSettings().to_json()), "sesion_length": 3}))
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    with pytest.raises(SettingsError, match=r"sesion_length: unknown player setting; allowed here: .*session_length"):
        PlayerSettings.load()
