"""A storm's trigger in a scenario file: each mistake names the file, the key and what is allowed;
a good trigger reaches the settings intact (and survives the settings file's JSON round trip);
``--set`` reaches a trigger inside an event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.config.scenario import ScenarioError, load, parse_override
from loadtest.config.settings import PlayerSettings

MINIMAL = '[scenario]\nduration = "10s"\n[[events]]\nat = 2\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "storm.toml"
    path.write_text(MINIMAL + text)
    return path


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('trigger = { kind = "ssh" }', "events[0].trigger.kind", "one of: chaos, http, command"),
        ('trigger = { kind = "command" }', "events[0].trigger.argv", "needs argv"),
        ('trigger = { kind = "http" }', "events[0].trigger.url", "needs a url"),
        ('trigger = { kind = "http", url = "ftp://x" }', "events[0].trigger.url", "http://, https:// or /"),
        ('trigger = { kind = "http", url = "/x", method = "BREW" }', "events[0].trigger.method", "GET, POST"),
        ('trigger = { kind = "http", url = "/x", hdrs = {} }', "events[0].trigger.hdrs", "allowed here: argv, body"),
        ('trigger = { kind = "command", argv = ["true"], url = "/x" }', "events[0].trigger.url", "kind, argv, timeout"),
        ('trigger = { kind = "chaos", argv = ["true"] }', "events[0].trigger.argv", "not a key of a chaos trigger"),
        ('trigger = { kind = "command", argv = ["true"], timeout = 0 }', "events[0].trigger.timeout", "> 0"),
        ('trigger = { kind = "command", argv = "docker restart" }', "events[0].trigger.argv", "array"),
        ('side = "client"\ntrigger = { kind = "command", argv = ["true"] }', "events[0].trigger", "server-side"),
        ('kind = "stall"\ntrigger = { kind = "http", url = "/x" }', "events[0].trigger", "not a stall"),
        ('window = "forever"', "events[0].window", "duration"),
    ],
)
def test_a_bad_trigger_names_file_key_and_what_is_allowed(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    error = info.value
    assert "\n" not in str(error) and error.path == str(path)
    assert error.key == key and words in str(error), str(error)


def test_a_trigger_reaches_the_settings_and_survives_their_json(tmp_path: Path) -> None:
    text = (
        'window = "3s"\n[events.trigger]\nkind = "http"\nmethod = "PUT"\nurl = "https://admin.example/restart"\n'
        'headers = { Authorization = "Bearer ${MY_TOKEN}" }\nbody = { pods = 1 }\ntimeout = "5s"\n'
        '[[events]]\nat = 4\ntrigger = { kind = "command", argv = ["kubectl", "rollout", "restart", "deploy/game"] }\n'
    )
    settings = load(write(tmp_path, text)).settings
    http, command = settings.storms
    assert (http.trigger.kind, http.trigger.method, http.trigger.timeout, http.window) == ("http", "PUT", 5.0, 3.0)
    assert http.trigger.headers == {"Authorization": "Bearer ${MY_TOKEN}"}, "kept as written: read when fired"
    assert http.trigger.body == {"pods": 1}
    assert command.trigger.argv == ("kubectl", "rollout", "restart", "deploy/game") and command.window == 10.0
    assert PlayerSettings.from_dict(json.loads(settings.to_json())) == settings


def test_set_reaches_a_trigger_inside_an_event(tmp_path: Path) -> None:
    path = write(tmp_path, 'trigger = { kind = "command", argv = ["true"] }\n')
    storm = load(path, [parse_override("events[0].trigger.timeout=7"), parse_override("events[0].window=4")])
    assert storm.settings.storms[0].trigger.timeout == 7.0 and storm.settings.storms[0].window == 4.0
    with pytest.raises(ScenarioError) as info:
        load(path, [parse_override('events[0].trigger.kind="ssh"')])
    assert info.value.key == "events[0].trigger.kind"
