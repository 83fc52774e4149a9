"""[player.network] and the network storm kinds: ranges stated once, refusals naming their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.config.scenario import ScenarioError, bundled, load
from loadtest.config.settings import NETWORK_STORMS, PlayerSettings, Storm
from loadtest.runtime.relay import FAULTS

MINIMAL = '[scenario]\nduration = "10s"\n'


def _load(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL + body)
    return load(path)


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ("[player.network]\nshare = 1.5\n", "player.network.share", "must be <= 1"),
        ("[player.network]\nlatency_ms = -1\n", "player.network.latency_ms", "must be >= 0"),
        ("[player.network]\nbandwith_kb_s = 5\n", "player.network.bandwith_kb_s", "unknown"),
        ('[player.network]\nstart_s = "10s"\nstop_s = "5s"\n', "player.network.stop_s", "must be after start_s"),
        ('[[events]]\nat = "1s"\nkind = "freeze"\nthen = "explode"\n', "events[0].then", "resume, close"),
        ('[[events]]\nat = "1s"\nkind = "latency_spike"\nlatency_ms = 0\n', "events[0].latency_ms", "must be > 0"),
    ],
)  # fmt: skip
def test_a_bad_network_setting_names_its_key(tmp_path: Path, body: str, key: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, body)
    assert info.value.key == key
    assert words in str(info.value)


def test_network_table_and_storm_kinds_become_settings(tmp_path: Path) -> None:
    scenario = _load(
        tmp_path,
        "[player.network]\nshare = 0.25\nlatency_ms = 80\njitter_ms = 10\nbandwidth_kb_s = 50\n"
        "rejoin_same_room = true\n"
        '[[events]]\nat = "2s"\nkind = "freeze"\nseconds = 4\nthen = "close"\nfraction = 0.5\n'
        '[[events]]\nat = "3s"\nkind = "latency_spike"\nlatency_ms = 300\n',
    )
    net = scenario.settings.network
    assert (net.share, net.latency_ms, net.jitter_ms, net.bandwidth_kb_s, net.rejoin_same_room) == (
        0.25, 80, 10, 50, True,
    )  # fmt: skip
    freeze, spike = scenario.settings.storms
    assert (freeze.side, freeze.seconds, freeze.then, freeze.fraction) == ("freeze", 4, "close", 0.5)
    assert (spike.side, spike.latency_ms) == ("latency_spike", 300)
    # Settings travel to workers as JSON.
    assert PlayerSettings.from_dict(scenario.settings.model_dump(mode="json")).network == net


def test_the_storm_kinds_are_the_relays_faults() -> None:
    assert NETWORK_STORMS == FAULTS
    assert Storm.parse("at=5,side=blackhole,seconds=3").side == "blackhole"


def test_bad_network_is_bundled_and_valid() -> None:
    (path,) = [p for p in bundled() if p.stem == "bad-network"]
    scenario = load(path)
    assert scenario.settings.network.relay_all
    assert {s.side for s in scenario.settings.storms} <= set(NETWORK_STORMS)


def test_a_stage_of_bad_network(tmp_path: Path) -> None:
    net = _load(tmp_path, '[player.network]\nshare = 1\nlatency_ms = 50\nstart_s = "10s"\nstop_s = "20s"\n')
    net = net.settings.network
    assert [net.active(t) for t in (0, 9.9, 10, 19.9, 20, 30)] == [False, False, True, True, False, False]
