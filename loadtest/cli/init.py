"""``loadtest init``: a scenario file to edit, with every ``[protocol]`` key listed and explained.

Why: a backend of the reference shape differs in names (paths, reply fields, message types), and
each name is a ``[protocol]`` key. Listing them all, each with what it means and its default,
commented out, turns "which key do I set?" into reading a file. The keys come from the scenario
model of the protocol kind (:func:`loadtest.config.scenario.file_model`), their meanings from the
fields' descriptions (or :data:`~loadtest.adapters.protocol.PROTOCOL_KEY_HELP` for the reference
protocol's), so a key added to the protocol appears here without a change. The file written is
checked like any scenario before it is written, and an existing file is never overwritten.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from loadtest.adapters.protocol import PROTOCOL_KEY_HELP
from loadtest.config.scenario import ScenarioError, file_model, from_table
from loadtest.errors import UsageError

#: What ``loadtest init`` starts from without ``--from``: a short, portable mix with its probes.
DEFAULT_SOURCE = "smoke"
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(#.*)?$")


class InitError(UsageError):
    """``loadtest init`` cannot write the file: the message says why; nothing was written."""


def protocol_keys(kind: str) -> list[tuple[str, Any, str]]:
    """``(key, default, meaning)`` of every ``[protocol]`` key of ``kind`` but ``kind`` itself."""
    table = file_model(kind).model_fields["protocol"].annotation
    out = []
    for name, info in table.model_fields.items():
        if name == "kind":
            continue
        default = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
        meaning = info.description or PROTOCOL_KEY_HELP.get(name, "")
        out.append((name, None if default is PydanticUndefined else default, meaning))
    return out


def toml_value(value: Any) -> str:
    """One value as TOML (tables inline, since they sit on one line of the ``[protocol]`` table)."""
    import tomli_w  # here, not at import: building the command line must not need it

    if isinstance(value, dict):
        items = ", ".join(f"{tomli_w.dumps({str(k): 0}).split(' = ')[0]} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").strip()


def without_protocol(text: str) -> str:
    """``text`` less its ``[protocol]`` table and subtables (their values are rewritten in full)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            name = header.group(1).replace('"', "").replace("'", "").strip()
            inside = name == "protocol" or name.startswith("protocol.")
        if not inside:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def protocol_table(kind: str, values: dict[str, Any]) -> str:
    """The ``[protocol]`` table: ``values`` set, every other key commented with its default."""
    lines = [
        "[protocol]",
        "# Every key of this protocol kind, with what it means and its default. Uncomment and edit",
        "# the ones your backend names differently; `loadtest check --target URL --set",
        "# protocol.KEY=VALUE` tries a value first and says which key a failing step needs.",
        f"kind = {toml_value(kind)}",
    ]
    for name, default, meaning in protocol_keys(kind):
        lines.append("")
        if meaning:
            lines.append(f"# {meaning}")
        if name in values:
            lines.append(f"{name} = {toml_value(values[name])}")
        elif default is None:
            lines.append(f"# {name} = ...  (required)")
        else:
            lines.append(f"# {name} = {toml_value(default)}")
    return "\n".join(lines) + "\n"


def render(source: Path, overrides: list[tuple[str, Any]]) -> str:
    """The file ``loadtest init --from source`` writes, checked as a scenario."""
    text = source.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InitError(f"{source}: not valid TOML: {exc}") from None
    values = dict(raw.get("protocol") or {})
    for key, value in overrides:
        head, _, name = key.partition(".")
        if head != "protocol" or not name or "." in name or "[" in name:
            raise InitError(
                f"--set {key}: init sets [protocol] keys only (protocol.KEY=VALUE); edit the file for the rest"
            )
        values[name] = value
    kind = str(values.pop("kind", "reference"))
    known = {name for name, _, _ in protocol_keys(kind)} if _kind_known(kind) else set()
    unknown = sorted(set(values) - known)
    if unknown and _kind_known(kind):
        raise InitError(f"--set protocol.{unknown[0]}: unknown key; allowed here: {', '.join(sorted(known))}")
    header = f"# Written by `loadtest init` from {source.name}; every [protocol] key is listed at the end.\n"
    out = header + without_protocol(text) + "\n" + protocol_table(kind, values)
    try:
        from_table(source.name, tomllib.loads(out))
    except ScenarioError as exc:
        raise InitError(str(exc)) from None
    return out


def _kind_known(kind: str) -> bool:
    from loadtest import adapters

    if kind not in adapters.kinds():
        raise InitError(f"--set protocol.kind: unknown protocol kind {kind!r}; known: {', '.join(adapters.kinds())}")
    return True


def write(out: Path, text: str) -> None:
    """Write ``text`` to ``out``, which must not exist yet."""
    try:
        with out.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise InitError(f"{out} already exists; choose another --out (nothing was written)") from None
    except OSError as exc:
        raise InitError(f"cannot write {out}: {exc.strerror or exc}") from None
