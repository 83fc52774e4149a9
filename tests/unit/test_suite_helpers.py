"""The suite's own machinery: the order two workers take tests in, and the cached Node install."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests import node_install
from tests.conftest import SLOW_WEIGHT, spread_heavy


class Item:
    """Just what :func:`spread_heavy` reads of a pytest item: its markers and its module."""

    def __init__(self, name: str, *, slow: bool = False, heavy: bool = False) -> None:
        self.name = name
        self.module = name.split(":")[0]
        self._marks = {"slow": [pytest.mark.slow.mark] if slow else []}
        self._marks["xdist_group"] = [pytest.mark.xdist_group("heavy").mark] if heavy else []

    def get_closest_marker(self, name: str):  # type: ignore[no-untyped-def]
        return (self._marks.get(name) or [None])[0]

    def iter_markers(self, name: str):  # type: ignore[no-untyped-def]
        return iter(self._marks.get(name, []))

    def __repr__(self) -> str:
        return self.name


def test_heavy_tests_are_spread_through_the_slow_ones_and_quick_ones_come_last() -> None:
    heavy = [Item(f"h{i}", slow=True, heavy=True) for i in range(3)]
    slow = [Item(f"s{i}", slow=True) for i in range(9)]
    quick = [Item(f"q{i}") for i in range(20)]
    items = [*quick[:10], *heavy, *slow, *quick[10:]]  # as collected: heavy ones side by side

    ordered = spread_heavy(items)  # type: ignore[arg-type]

    assert sorted(map(repr, ordered)) == sorted(map(repr, items)), "every test, once"
    names = [repr(i) for i in ordered]
    assert names[0] == "h0", "a heavy test starts at once"
    positions = [names.index(h.name) for h in heavy]
    assert all(b - a == 4 for a, b in itertools.pairwise(positions)), names  # three slow between
    assert names[-20:] == [q.name for q in quick], "quick tests last, in their own order"
    assert SLOW_WEIGHT > 1


def test_without_heavy_tests_slow_ones_come_first() -> None:
    items = [Item("q0"), Item("s0", slow=True), Item("q1")]
    assert [repr(i) for i in spread_heavy(items)] == ["s0", "q0", "q1"]  # type: ignore[arg-type]


def _lock(folder: Path, version: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "package.json").write_text(json.dumps({"name": "x", "version": version}))
    (folder / "package-lock.json").write_text("{}")
    return folder


def test_a_new_lock_is_a_new_install_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = node_install.cache_dir(_lock(tmp_path / "a", "1"), "thing")
    assert first.parent == tmp_path / "cache" / "game-loadtest" and first.name.startswith("thing-")
    assert node_install.cache_dir(_lock(tmp_path / "a", "1"), "thing") == first
    assert node_install.cache_dir(_lock(tmp_path / "a", "2"), "thing") != first


def test_a_complete_install_is_reused_and_a_missing_npm_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no npm anywhere
    source = _lock(tmp_path / "src", "1")
    with pytest.raises(node_install.NodeUnavailable, match=r"npm is not on PATH: .* Node 22 and the widget"):
        node_install.install(source, "widget", what="the widget", timeout=5)
    # A folder without its .complete mark (an interrupted install) is never taken for finished.
    folder = node_install.cache_dir(source, "widget")
    (folder / node_install.NODE).parent.mkdir(parents=True)
    (folder / node_install.NODE).write_text("")
    with pytest.raises(node_install.NodeUnavailable):
        node_install.install(source, "widget", what="the widget", timeout=5)
    (folder / ".complete").write_text("ok\n")
    assert node_install.install(source, "widget", what="the widget", timeout=5) == folder
