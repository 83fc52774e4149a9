"""Scenario files: what ``loadtest run`` does, as TOML users copy from ``loadtest/scenarios/``.

A scenario is validated completely before anything starts, by :func:`file_model` (one pydantic
model per protocol kind): an unknown key, a wrong type or an impossible value is a
:class:`ScenarioError` that names the file, the key (``load.stages[1].users``) and what is
allowed. The ``[player]``, ``[ticks]``, ``[probes]``, ``[player.reconnect]`` and ``[[events]]``
tables are made from the settings' own fields (:mod:`loadtest.config.settings`), so a range or a
default is stated once. ``--set key=value`` overrides any value, by its dotted key, array items
by index (``gates[0].expr``), before validation.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WrapValidator,
    create_model,
    model_validator,
)

from loadtest import adapters
from loadtest.adapters import AdapterKind
from loadtest.adapters.protocol import ProtocolConfig
from loadtest.backend.config import DEFECTS
from loadtest.config.model import Array, Model, Seconds, derive, explain, render, seconds
from loadtest.config.settings import NETWORK_STORMS, PlayerSettings, ProbeSettings, Storm
from loadtest.errors import UsageError
from loadtest.results.gates import Gate, GateSyntaxError, parse

__all__ = [
    "BACKEND_OPTIONS",
    "Scenario",
    "ScenarioError",
    "Stage",
    "apply_override",
    "bundled",
    "file_model",
    "from_table",
    "load",
    "parse_override",
    "seconds",
    "summary_line",
]

DEFECT_NAMES = tuple(sorted(DEFECTS))
#: Options of the embedded reference backend a scenario may set: TOML key -> ``loadtest serve`` flag.
BACKEND_OPTIONS = {
    "tick_rate": ("--tick-rate", float),
    "game_servers": ("--game-servers", int),
    "room_capacity": ("--room-capacity", int),
    "heartbeat": ("--heartbeat", float),
    "substeps": ("--substeps", int),
    "ticket_ttl": ("--ticket-ttl", float),
    "token_ttl": ("--token-ttl", float),
    "token_rate": ("--token-rate", float),
    "token_burst": ("--token-burst", int),
    "join_rate": ("--join-rate", float),
    "join_burst": ("--join-burst", int),
    "join_player_rate": ("--join-player-rate", float),
    "join_player_burst": ("--join-player-burst", int),
}
#: Probe settings only some adapters' probes honour (``Adapter.probe_extras``).
ADAPTER_PROBE_SETTINGS = ("seat_hoarding",)
#: Array items that may be written short, as one value: the key that value stands for.
SHORT_FORMS = {"gates": "expr"}
_EXAMPLES = {"scenario.duration": '"60s"'}


class ScenarioError(UsageError):
    """A scenario that cannot run: ``file: key: what is wrong (what is allowed)``."""

    def __init__(self, path: str | Path, key: str, message: str) -> None:
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")
        self.path = str(path)
        self.key = key


@dataclass(frozen=True)
class Stage:
    duration: float
    users: int
    spawn_rate: float


#: Sessions one worker process holds at 60 Hz well below saturation (44% of a core at 500 with
#: every collector on; bench/ws_engine.py, docs/performance.md): what ``load.workers = "auto"``
#: plans with. 1,000 per worker is the engine's goal, not yet shown with lag under a tick period.
SESSIONS_PER_WORKER = 500
#: ``load.workers = "auto"`` and ``--workers auto``: the number of workers is chosen at load time.
AUTO = "auto"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def workers_for(peak_users: int, cores: int | None = None) -> int:
    """``load.workers = "auto"``: enough workers for ``peak_users`` at :data:`SESSIONS_PER_WORKER`
    each, at most one per core but one, and at least one.

    A worker's Python work (gevent side and engine thread, one interpreter lock) runs on about one
    core. The core left over is for everything else on the machine that a run needs: the Locust
    master (measured: about 1 CPU-s to start, then 0.3-2% of a core with 2 workers of 100
    sessions at 60 Hz; docs/distributed.md §6), ``loadtest run`` itself, and the embedded backend
    when there is one, which serves every session's ticks and cost more than both workers
    together. On one or two cores that is one worker: a single process, with no master at all."""
    cores = usable_cores() if cores is None else cores
    return max(1, min(cores - 1, 64, -(-peak_users // SESSIONS_PER_WORKER)))


def _workers_or_auto(value: Any, handler: Any) -> Any:
    """``"auto"`` as itself; anything else as the whole number the field's range allows."""
    if value == AUTO:
        return AUTO
    try:
        return handler(value)
    except ValidationError as exc:
        if str(exc.errors()[0]["type"]).startswith("int_"):
            raise ValueError(f'{value!r} is not a whole number or "auto"') from None
        raise


@dataclass(frozen=True)
class Scenario:
    path: str
    name: str
    description: str
    duration: float
    users: int
    spawn_rate: float
    workers: int
    stages: tuple[Stage, ...]
    target: str | None
    defects: tuple[str, ...]
    backend_args: tuple[str, ...]
    settings: PlayerSettings
    gates: tuple[Gate, ...]
    protocol_kind: str = "reference"
    #: ``load.workers = "auto"``: ``workers`` was chosen from the cores (:func:`workers_for`).
    workers_auto: bool = False


# -- the file's tables ------------------------------------------------------------------------


def _table() -> Any:
    """A table that may be left out: its defaults apply (and its required keys are reported)."""
    return Field(default_factory=dict, validate_default=True)


def _url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://", value):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    return value


class ScenarioTable(Model):
    name: str | None = Field(None, description="the run's name (default: the file's name)")
    description: str = ""
    duration: Seconds = Field(gt=0, description='run time, e.g. "60s" or "5m"')


BackendTable = create_model(
    "BackendTable",
    __base__=Model,
    **{key: (Annotated[kind, Field(gt=0)] | None, None) for key, (_, kind) in BACKEND_OPTIONS.items()},
    cors_origins=(Array(str), ()),
)


class TargetTable(Model):
    url: Annotated[str | None, AfterValidator(_url)] = Field(None, description="base URL of the backend under test")
    defects: Array(Literal[DEFECT_NAMES]) = Field((), description="defects of the embedded backend")
    backend: BackendTable = _table()  # type: ignore[valid-type]


class StageTable(Model):
    duration: Seconds = Field(gt=0, description="length of the stage")
    users: int = Field(ge=0, description="players at the end of the stage")
    spawn_rate: float | None = Field(
        None, gt=0, description="players started per second", json_schema_extra={"unset": "load.users"}
    )


class LoadTable(Model):
    users: int = Field(10, ge=1, description="simulated players")
    spawn_rate: float | None = Field(
        None, gt=0, description="players started per second", json_schema_extra={"unset": "load.users"}
    )
    #: A whole number, or ``"auto"`` (:func:`workers_for`), which :func:`load` resolves.
    workers: Annotated[int, WrapValidator(_workers_or_auto)] = Field(
        1,
        ge=1,
        le=64,
        description='Locust worker processes, or "auto": one per 500 planned sessions, at most cores - 1',
    )
    stages: Array(StageTable) = ()


EventTable = derive(
    "EventTable",
    Storm,
    ("at", "fraction", "close_code", "seconds", "optional", "trigger", "window", "then", "latency_ms"),
    kind=(
        Literal[("storm", "stall", *NETWORK_STORMS)],
        Field("storm", description="a reconnect storm, a stall of the tick loops, or a network storm"),
    ),
    side=(Literal["client", "server"], Field("server", description="who drops the sessions of a storm")),
)
PlayerTable = derive(
    "PlayerTable",
    PlayerSettings,
    (
        "session_length",
        "input_rate",
        "join_mode",
        "room",
        "sessions_per_user",
        "think_time",
        "connect_timeout",
        "honour_retry_after",
        "ca_bundle",
        "insecure",
        "max_http_in_flight",
        "source_addresses",
        "reconnect",
        "network",
    ),
)
#: ``[ticks]`` key -> player setting.
TICKS_KEYS = {
    "degradation_threshold": "degradation_threshold",
    "nominal_hz": "nominal_tick_rate",
    "nominal_gauge": "nominal_tick_gauge",
    "clock_offset": "clock_offset",
}
TicksTable = derive("TicksTable", PlayerSettings, TICKS_KEYS)


class GateTable(Model):
    expr: str = Field(description="METRIC OP VALUE, e.g. tick.p5_hz >= 54")
    over: Seconds | None = Field(None, gt=0, description="judge over a sliding window of this many seconds")
    abort_on_fail: bool = Field(False, description="stop the run when the gate fails")
    delay: Seconds = Field(0.0, ge=0, description="seconds into the run before abort_on_fail may act")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"expr": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _parses(self) -> GateTable:
        try:
            self.gate()
        except GateSyntaxError as exc:
            raise ValueError(str(exc)) from None
        return self

    def gate(self) -> Gate:
        return parse(self.expr, over=self.over, abort_on_fail=self.abort_on_fail, delay=self.delay)


class ScenarioFile(Model):
    """A scenario file without its ``[protocol]`` table, whose keys depend on its kind (:func:`file_model`)."""

    scenario: ScenarioTable = _table()
    target: TargetTable = _table()
    load: LoadTable = _table()
    player: PlayerTable = _table()  # type: ignore[valid-type]
    ticks: TicksTable = _table()  # type: ignore[valid-type]
    probes: ProbeSettings = _table()
    events: Array(EventTable) = ()
    gates: Array(GateTable) = ()


class _Kind(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kind: AdapterKind = "reference"


class _KindOfFile(BaseModel):
    """Reads only ``protocol.kind``, which decides the keys of the rest of the table."""

    model_config = ConfigDict(extra="ignore")
    protocol: _Kind = _table()


@functools.cache
def file_model(kind: str) -> type[ScenarioFile]:
    """The model of a scenario file whose ``[protocol]`` is of ``kind``: the reference protocol's
    keys are :class:`ProtocolConfig`'s, another adapter's are its ``options``."""
    if kind == "reference":
        keys = {f.name: (str, Field(f.default)) for f in dataclasses.fields(ProtocolConfig) if f.name != "steps"}
        keys["steps"] = (dict[str, str], Field(default_factory=dict, description="extra HTTP steps: name = path"))
    else:
        fields = adapters.get(kind).options_model().model_fields
        keys = {name: (info.annotation, copy.copy(info)) for name, info in fields.items()}
    protocol = create_model(
        f"{kind.title()}ProtocolTable",
        __base__=Model,
        kind=(Literal[kind], Field(kind, description="which adapter speaks to the backend")),
        **keys,
    )
    return create_model(f"{kind.title()}ScenarioFile", __base__=ScenarioFile, protocol=(protocol, _table()))


# -- overrides --------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """``load.users=50`` -> ("load.users", 50); the value is read as TOML, else taken as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError("--set", text, "expected key=value, e.g. load.users=50")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)((?:\[\d+\])*)$")


def _steps(key: str) -> list[str | int]:
    """``load.stages[1].users`` -> ["load", "stages", 1, "users"]."""
    steps: list[str | int] = []
    for part in key.split("."):
        match = _STEP.match(part.strip())
        if not match:
            raise ScenarioError("--set", key, f"{part!r} is not a key (name, or name[index] for an array item)")
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\d+", match.group(2))]
    return steps


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in the parsed file: tables are made as needed, array items must exist."""
    steps = _steps(key)
    node: Any = data
    for depth, step in enumerate(steps):
        last = depth == len(steps) - 1
        where = render(steps[:depth]) or "the file"
        if isinstance(step, int):
            if not isinstance(node, list):
                raise ScenarioError("--set", key, f"{where} is not an array")
            if step >= len(node):
                have = f"items 0..{len(node) - 1}" if node else "no items"
                raise ScenarioError("--set", key, f"index {step} is out of range: {where} has {have}")
            if last:
                node[step] = value
                return
            short = SHORT_FORMS.get(str(steps[depth - 1]))
            if short and not isinstance(node[step], dict | list):
                node[step] = {short: node[step]}  # gates[0].over on `gates = ["expr"]`
            node = node[step]
            continue
        if not isinstance(node, dict):
            raise ScenarioError("--set", key, f"{where} is a value, not a table")
        if last:
            node[step] = value
            return
        node = node.setdefault(step, [] if isinstance(steps[depth + 1], int) else {})


# -- validation -------------------------------------------------------------------------------


def load(path: str | Path, overrides: list[tuple[str, Any]] | None = None) -> Scenario:
    """Read, override and validate a scenario file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(path, "", "no such file (see `loadtest scenarios` for the bundled ones)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, "", f"not valid TOML: {exc}") from None
    for key, value in overrides or ():
        apply_override(raw, key, value)
    return _build(str(path), raw)


def from_table(label: str, raw: dict[str, Any], overrides: list[tuple[str, Any]] | None = None) -> Scenario:
    """A scenario from a parsed table rather than a file (``loadtest check`` without a scenario:
    the defaults and its ``--set`` values), validated the same way; errors name ``label``."""
    raw = copy.deepcopy(raw)
    for key, value in overrides or ():
        apply_override(raw, key, value)
    return _build(label, raw)


def _invalid(path: str, exc: ValidationError, key_of: Any = render) -> ScenarioError:
    loc, text = explain(exc)
    key = key_of(loc)
    if text == "required" and key in _EXAMPLES:
        text = f"required (e.g. {_EXAMPLES[key]})"
    return ScenarioError(path, key, text)


def _build(path: str, raw: dict[str, Any]) -> Scenario:
    try:
        kind = _KindOfFile.model_validate(raw, strict=True).protocol.kind
        doc = file_model(kind).model_validate(raw, strict=True)
    except ValidationError as exc:
        raise _invalid(path, exc) from None
    adapter = adapters.get(kind)

    options = doc.protocol.model_dump()
    options.pop("kind")
    protocol, protocol_options = (ProtocolConfig(**options), {}) if kind == "reference" else (ProtocolConfig(), options)

    for name in ADAPTER_PROBE_SETTINGS:
        if getattr(doc.probes, name) and name not in adapter.probe_extras:
            supporting = ", ".join(k for k in adapters.kinds() if name in adapters.get(k).probe_extras)
            raise ScenarioError(
                path, f"probes.{name}", f"not supported by protocol kind {kind!r} (only by: {supporting})"
            )
    target = doc.target.url
    if not adapter.embedded_backend and target is None:
        raise ScenarioError(
            path,
            "target.url",
            f"required for protocol kind {kind!r}: the embedded backend speaks only the reference protocol "
            "(or pass --target URL)",
        )

    for i, e in enumerate(doc.events):
        if e.trigger.kind != "chaos" and (e.kind, e.side) != ("storm", "server"):
            what = "a stall" if e.kind == "stall" else f"a {e.side}-side storm"
            raise ScenarioError(path, f"events[{i}].trigger", f"only a server-side storm has a trigger, not {what}")
    storms = tuple(
        Storm(
            at=e.at,
            side=e.kind if e.kind in ("stall", *NETWORK_STORMS) else e.side,
            fraction=e.fraction,
            close_code=e.close_code,
            seconds=e.seconds,
            optional=e.optional,
            trigger=e.trigger,
            window=e.window,
            then=e.then,
            latency_ms=e.latency_ms,
        )
        for e in doc.events
    )
    given = {name: getattr(doc.player, name) for name in doc.player.model_fields_set}
    given |= {TICKS_KEYS[name]: getattr(doc.ticks, name) for name in doc.ticks.model_fields_set}
    try:
        settings = PlayerSettings.model_validate(
            {
                "protocol": protocol,
                "protocol_kind": kind,
                "protocol_options": protocol_options,
                "probes": doc.probes,
                "storms": storms,
                **adapter.implied_settings(protocol_options),
                **given,
            }
        )
    except ValidationError as exc:  # only checks across keys are left (join_mode "code" needs a room)
        raise _invalid(path, exc, PlayerSettings.key_of) from None

    load_ = doc.load
    duration, users = doc.scenario.duration, load_.users
    spawn_rate = load_.spawn_rate if load_.spawn_rate is not None else float(users)
    stages = tuple(
        Stage(s.duration, s.users, s.spawn_rate if s.spawn_rate is not None else float(users)) for s in load_.stages
    )
    if stages:
        # A staged scenario's length and size are its stages' (scenario.duration and load.users
        # would otherwise describe a run that does not happen).
        duration = sum(stage.duration for stage in stages)
        users = max(stage.users for stage in stages)
    if target and settings.source_addresses:
        host = re.sub(r"^https?://(\[[^]]*\]|[^/:]*).*$", r"\1", target)
        if host != "localhost" and not host.startswith(("127.", "[::1]")):
            raise ScenarioError(
                path,
                "player.source_addresses",
                f"loopback source addresses cannot reach {host}; remove them for a remote target "
                "(--set 'player.source_addresses=[]')",
            )
    workers_auto = load_.workers == AUTO
    workers = workers_for(users) if workers_auto else int(load_.workers)
    backend = doc.target.backend
    backend_args: list[str] = []
    for key, (flag, _) in BACKEND_OPTIONS.items():
        value = getattr(backend, key)
        if value is not None:
            backend_args += [flag, str(value)]
    for origin in backend.cors_origins:
        backend_args += ["--cors-origin", origin]
    return Scenario(
        path=path,
        name=doc.scenario.name if doc.scenario.name is not None else Path(path).stem,
        description=doc.scenario.description,
        duration=duration,
        users=users,
        spawn_rate=spawn_rate,
        workers=workers,
        stages=stages,
        target=target,
        defects=doc.target.defects,
        backend_args=tuple(backend_args),
        settings=settings,
        gates=tuple(g.gate() for g in doc.gates),
        protocol_kind=kind,
        workers_auto=workers_auto,
    )


#: Where the bundled scenarios live: package data, so a plain ``pip install`` has them too (the
#: repository's ``scenarios/`` is a link to this folder, for the paths the docs use).
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def bundled() -> list[Path]:
    """The scenarios shipped inside the package (``loadtest/scenarios/*.toml``)."""
    return sorted(BUNDLED_DIR.glob("*.toml")) if BUNDLED_DIR.is_dir() else []


def summary_line(path: Path) -> str:
    """The first line of a scenario's header comment, for ``loadtest scenarios``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#"):
            return text.lstrip("# ").strip()
        if text:
            break
    return ""
