"""Adapters from other packages: an entry point in ``loadtest.adapters`` or ``register_adapter``.

The entry-point tests install a real (tiny) distribution: a ``*.dist-info`` folder with an
``entry_points.txt`` next to its module, in a temporary folder put on ``sys.path``, which is how
pip leaves an installed package; ``importlib.metadata`` finds it exactly as it would a real one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest import adapters
from loadtest.adapters import Adapter, AdapterError, Option, UnknownAdapter, register_adapter
from loadtest.cli.main import main
from loadtest.config.scenario import ScenarioError, load

PLUGIN = """
from loadtest.adapters import Adapter, Option
from loadtest.adapters.protocol import Protocol


class MyGameProtocol(Protocol):
    pass


ADAPTER = Adapter(
    "mygame",
    lambda settings: MyGameProtocol(settings.protocol),
    options={"arena": Option("string", required=True, help="the arena to join")},
    embedded_backend=False,
)


def broken():
    return "not an adapter"
"""


def install_dist(root: Path, name: str, entry_points: str, module: str | None = None) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[loadtest.adapters]\n{entry_points}\n")
    if module is not None:
        (root / f"{name}.py").write_text(module)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A registry of this test's own: what it registers or loads is gone afterwards."""
    monkeypatch.setattr(adapters, "_REGISTRY", dict(adapters._REGISTRY))
    monkeypatch.setattr(adapters, "_loaded", {})
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("lt_plugin_"):
            del sys.modules[name]


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: None) -> Path:
    install_dist(
        tmp_path,
        "lt_plugin_mygame",
        "mygame = lt_plugin_mygame:ADAPTER\n"
        "wrongshape = lt_plugin_mygame:broken\n"
        "missing = lt_plugin_nosuchmodule:ADAPTER\n"
        "renamed = lt_plugin_mygame:ADAPTER",
        PLUGIN,
    )
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates the import and metadata caches
    return tmp_path


def test_an_entry_point_adapter_is_listed_without_importing_it_and_loaded_on_lookup(plugin: Path) -> None:
    assert adapters.kinds()[:2] == ("reference", "colyseus")
    assert {"mygame", "wrongshape", "missing"} <= set(adapters.kinds())
    assert "lt_plugin_mygame" not in sys.modules, "listing kinds must not import plug-ins"

    adapter = adapters.get("mygame")

    assert adapter.kind == "mygame"
    assert sys.modules["lt_plugin_mygame"].ADAPTER is adapter
    assert adapters.get("mygame") is adapter


def test_an_unknown_kind_names_the_entry_point_kinds_too(plugin: Path) -> None:
    with pytest.raises(UnknownAdapter) as caught:
        adapters.get("mygam")
    message = str(caught.value)
    assert "protocol kind 'mygam' is unknown" in message
    assert "reference" in message and "colyseus" in message and "mygame" in message


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("missing", "could not be loaded: ModuleNotFoundError"),
        ("wrongshape", "gave a str, not a loadtest.Adapter"),
        ("renamed", "gave the adapter of kind 'mygame'"),
    ],
)
def test_a_broken_entry_point_is_one_clear_error(plugin: Path, kind: str, words: str) -> None:
    with pytest.raises(AdapterError) as caught:
        adapters.get(kind)
    assert f"entry point {kind} = lt_plugin_" in str(caught.value)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_scenario_may_name_an_entry_point_kind_and_its_options(plugin: Path, tmp_path: Path) -> None:
    path = tmp_path / "mygame.toml"
    path.write_text(
        '[scenario]\nduration = "10s"\n[target]\nurl = "http://127.0.0.1:9"\n'
        '[protocol]\nkind = "mygame"\narena = "north"\n'
    )
    scenario = load(path)
    assert scenario.protocol_kind == "mygame"
    assert scenario.settings.protocol_options["arena"] == "north"
    assert type(adapters.protocol_for(scenario.settings)).__name__ == "MyGameProtocol"

    path.write_text('[scenario]\nduration = "10s"\n[target]\nurl = "http://127.0.0.1:9"\n[protocol]\nkind = "mygame"\n')
    with pytest.raises(ScenarioError, match=r"protocol\.arena: required"):
        load(path)


def test_a_broken_plug_in_named_by_a_scenario_ends_the_command_with_one_line(
    plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[scenario]\nduration = "10s"\n[protocol]\nkind = "missing"\n')
    with pytest.raises(SystemExit) as exited:
        main(["run", str(path), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("loadtest run: adapter entry point missing = lt_plugin_nosuchmodule:ADAPTER")
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_register_adapter_builds_lazily_once_and_refuses_a_taken_kind(registry: None) -> None:
    built: list[int] = []

    def factory() -> Adapter:
        built.append(1)
        return Adapter("mine", lambda settings: None, options={"x": Option("int", 1)})  # type: ignore[arg-type,return-value]

    register_adapter("mine", factory)
    assert "mine" in adapters.kinds() and built == []
    assert adapters.get("mine").options["x"].default == 1
    adapters.get("mine")
    assert built == [1]

    with pytest.raises(AdapterError, match="'mine' is already registered"):
        register_adapter("mine", factory)
    with pytest.raises(AdapterError, match="'colyseus' is already registered"):
        register_adapter("colyseus", factory)

    replacement = Adapter("mine", lambda settings: None)  # type: ignore[arg-type,return-value]
    register_adapter("mine", replacement, replace=True)
    assert adapters.get("mine") is replacement


def test_registered_kinds_come_before_entry_points_of_the_same_name(plugin: Path) -> None:
    mine = Adapter("mygame", lambda settings: None)  # type: ignore[arg-type,return-value]
    register_adapter("mygame", mine)
    assert adapters.get("mygame") is mine
    assert adapters.kinds().count("mygame") == 1
    assert "lt_plugin_mygame" not in sys.modules
