"""Scenario files: what ``loadtest run`` does, as TOML users copy from ``scenarios/``.

A scenario is validated completely before anything starts: an unknown key, a wrong type or an
impossible value is a :class:`ScenarioError` that names the file, the key and what is allowed.
``--set key=value`` overrides any value, by its dotted key, before validation.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loadtest import adapters
from loadtest.adapters import KINDS as ADAPTER_KINDS
from loadtest.adapters.protocol import ProtocolConfig
from loadtest.backend.config import DEFECTS
from loadtest.config.settings import JOIN_MODES, PlayerSettings, ProbeSettings, SettingsError, Storm, expand_addresses
from loadtest.results.gates import Gate, GateSyntaxError, parse
from loadtest.runtime.backoff import KINDS as POLICY_KINDS
from loadtest.runtime.backoff import PolicyError, ReconnectPolicy

PROTOCOL_KINDS = ADAPTER_KINDS
#: Options of the embedded reference backend a scenario may set: TOML key -> ``loadtest serve`` flag.
BACKEND_OPTIONS = {
    "tick_rate": ("--tick-rate", float),
    "game_servers": ("--game-servers", int),
    "room_capacity": ("--room-capacity", int),
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


class ScenarioError(ValueError):
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


def workers_for(peak_users: int, cores: int | None = None) -> int:
    """``load.workers = "auto"``: enough workers for ``peak_users`` at :data:`SESSIONS_PER_WORKER`
    each, at most one per core (the engine thread of a worker needs a core of its own)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 64, -(-peak_users // SESSIONS_PER_WORKER)))


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
    extra: dict[str, Any] = field(default_factory=dict)

    def stages_or_ramp(self) -> tuple[Stage, ...]:
        return self.stages or (Stage(self.duration, self.users, self.spawn_rate),)


# -- values -----------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(value: Any) -> float:
    """``30``, ``"30s"``, ``"2m"``, ``"1h"``, ``"500ms"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, not true/false")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f'{value!r} is not a duration (e.g. 30, "30s", "2m", "1h")')
    return float(match.group(1)) * _UNITS[match.group(2)]


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


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ScenarioError("--set", key, f"{part!r} is a value, not a table")
        node = child
    node[parts[-1]] = value


# -- validation -------------------------------------------------------------------------------


class _Reader:
    """Reads one table, remembering which keys were used, so leftovers are reported as unknown."""

    def __init__(self, path: str, prefix: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ScenarioError(path, prefix, "must be a table")
        self.path, self.prefix, self.table, self.used = path, prefix, table, set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(self, name: str, kind: str, default: Any = None, *, allowed: Any = None, check: Any = None) -> Any:
        self.used.add(name)
        if name not in self.table:
            return default
        value = self.table[name]
        try:
            value = _convert(value, kind)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(self.path, self.key(name), f"{exc}; expected {kind}") from None
        if allowed is not None and value not in allowed:
            raise ScenarioError(
                self.path, self.key(name), f"{value!r} is not allowed; one of: {', '.join(map(str, allowed))}"
            )
        if check is not None:
            problem = check(value)
            if problem:
                raise ScenarioError(self.path, self.key(name), f"{problem}, got {value!r}")
        return value

    def sub(self, name: str) -> _Reader:
        self.used.add(name)
        return _Reader(self.path, self.key(name), self.table.get(name, {}))

    def done(self, known: tuple[str, ...] = ()) -> None:
        unknown = sorted(set(self.table) - self.used - set(known))
        if unknown:
            allowed = sorted(self.used | set(known))
            raise ScenarioError(self.path, self.key(unknown[0]), f"unknown key; allowed here: {', '.join(allowed)}")


def _convert(value: Any, kind: str) -> Any:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{value!r} is not a whole number")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{value!r} is not a number")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"{value!r} is not true or false")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise TypeError(f"{value!r} is not a string")
        return value
    if kind == "duration":
        return seconds(value)
    if kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{value!r} is not a list of strings")
        return tuple(value)
    if kind == "table":
        if not isinstance(value, dict):
            raise TypeError(f"{value!r} is not a table")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError("a table of plain values (no dates or times)") from None
        return dict(value)
    if kind == "numbers":
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise TypeError(f"{value!r} is not a list of numbers")
        return tuple(float(v) for v in value)
    raise AssertionError(kind)


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _at_least(low: float) -> Any:
    return lambda value: None if value >= low else f"must be >= {low:g}"


def _between(low: float, high: float) -> Any:
    return lambda value: None if low <= value <= high else f"must be {low:g}..{high:g}"


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


def _build(path: str, raw: dict[str, Any]) -> Scenario:
    top = _Reader(path, "", raw)

    sc = top.sub("scenario")
    name = sc.get("name", "string", Path(path).stem)
    description = sc.get("description", "string", "")
    duration = sc.get("duration", "duration", None, check=_positive)
    if duration is None:
        raise ScenarioError(path, "scenario.duration", 'required (e.g. "60s")')
    sc.done()

    tg = top.sub("target")
    target = tg.get(
        "url",
        "string",
        None,
        check=lambda u: None if re.match(r"^https?://", u) else "must start with http:// or https://",
    )
    defects = tg.get("defects", "strings", ())
    for defect in defects:
        if defect not in DEFECTS:
            raise ScenarioError(
                path, "target.defects", f"unknown defect {defect!r}; allowed: {', '.join(sorted(DEFECTS))}"
            )
    backend = tg.sub("backend")
    backend_args: list[str] = []
    for key, (flag, kind) in BACKEND_OPTIONS.items():
        value = backend.get(key, "int" if kind is int else "number", None, check=_positive)
        if value is not None:
            backend_args += [flag, str(value)]
    cors = backend.get("cors_origins", "strings", ())
    for origin in cors:
        backend_args += ["--cors-origin", origin]
    backend.done()
    tg.done()

    pr = top.sub("protocol")
    kind = pr.get("kind", "string", "reference", allowed=PROTOCOL_KINDS)
    adapter = adapters.get(kind)
    protocol = ProtocolConfig()
    protocol_options: dict[str, Any] = {}
    if kind == "reference":
        protocol_values = {k: pr.get(k, "string") for k in ProtocolConfig.field_names()}
        protocol = ProtocolConfig(**{k: v for k, v in protocol_values.items() if v is not None})
    for key, option in adapter.options.items():
        value = pr.get(key, option.kind, option.default, allowed=option.allowed)
        if value is None and option.required:
            _missing(path, f"protocol.{key}")
        protocol_options[key] = value
    pr.done()

    ld = top.sub("load")
    users = ld.get("users", "int", 10, check=_at_least(1))
    spawn_rate = ld.get("spawn_rate", "number", float(users), check=_positive)
    auto_workers = ld.table.get("workers") == "auto"
    if isinstance(ld.table.get("workers"), str) and not auto_workers:
        raise ScenarioError(path, "load.workers", f'expected an integer 1-64 or "auto", got {ld.table["workers"]!r}')
    workers = 1 if auto_workers else ld.get("workers", "int", 1, check=_between(1, 64))
    ld.used.add("workers")
    stages = []
    ld.used.add("stages")
    raw_stages = ld.table.get("stages", [])
    if not isinstance(raw_stages, list):
        raise ScenarioError(path, "load.stages", "must be an array of tables ([[load.stages]])")
    for i, item in enumerate(raw_stages):
        st = _Reader(path, f"load.stages[{i}]", item)
        stages.append(
            Stage(
                st.get("duration", "duration", None, check=_positive) or _missing(path, f"load.stages[{i}].duration"),
                st.get("users", "int", None, check=_at_least(0))
                if "users" in item
                else _missing(path, f"load.stages[{i}].users"),
                st.get("spawn_rate", "number", float(users), check=_positive),
            )
        )
        st.done()
    ld.done()
    if auto_workers:
        workers = workers_for(max([users, *(s.users for s in stages)]))

    storms = []
    top.used.add("events")
    raw_events = raw.get("events", [])
    if not isinstance(raw_events, list):
        raise ScenarioError(path, "events", "must be an array of tables ([[events]])")
    for i, item in enumerate(raw_events):
        ev = _Reader(path, f"events[{i}]", item)
        at = ev.get("at", "duration", None)
        if at is None:
            _missing(path, f"events[{i}].at")
        kind_ = ev.get("kind", "string", "storm", allowed=("storm", "stall"))
        side = ev.get("side", "string", "server", allowed=("client", "server"))
        try:
            storms.append(
                Storm(
                    at=at,
                    side="stall" if kind_ == "stall" else side,
                    fraction=ev.get("fraction", "number", 1.0),
                    close_code=ev.get("close_code", "int", 1012),
                    seconds=ev.get("seconds", "duration", 2.0),
                )
            )
        except SettingsError as exc:
            raise ScenarioError(path, f"events[{i}]", str(exc)) from None
        ev.done()

    pl = top.sub("player")
    player: dict[str, Any] = {
        "session_length": pl.get("session_length", "duration", None, check=_positive),
        "input_rate": pl.get("input_rate", "number", None, check=_positive),
        "join_mode": pl.get("join_mode", "string", None, allowed=JOIN_MODES),
        "room": pl.get("room", "string", None),
        "sessions_per_user": pl.get("sessions_per_user", "int", None, check=_at_least(0)),
        "think_time": pl.get("think_time", "duration", None, check=_at_least(0)),
        "connect_timeout": pl.get("connect_timeout", "duration", None, check=_positive),
        "honour_retry_after": pl.get("honour_retry_after", "bool", None),
        "ca_bundle": pl.get("ca_bundle", "string", None),
        "insecure": pl.get("insecure", "bool", None),
        "max_http_in_flight": pl.get("max_http_in_flight", "int", None, check=_between(1, 64)),
    }
    addresses = pl.table.get("source_addresses")
    pl.used.add("source_addresses")
    if addresses is not None:
        try:
            spec = ",".join(addresses) if isinstance(addresses, list) else str(addresses)
            player["source_addresses"] = expand_addresses(spec)
        except (SettingsError, ValueError) as exc:
            raise ScenarioError(path, "player.source_addresses", str(exc)) from None
    rc = pl.sub("reconnect")
    policy: dict[str, Any] = {
        "kind": rc.get("kind", "string", None, allowed=POLICY_KINDS),
        "base": rc.get("base", "duration", None),
        "multiplier": rc.get("multiplier", "number", None),
        "cap": rc.get("cap", "duration", None),
        "max_attempts": rc.get("max_attempts", "int", None),
    }
    jitter = rc.get("jitter", "numbers", None)
    if jitter is not None:
        if len(jitter) != 2:
            raise ScenarioError(path, "player.reconnect.jitter", "must be [min, max] seconds")
        policy["jitter_min"], policy["jitter_max"] = jitter
    rc.done()
    pl.done()

    tk = top.sub("ticks")
    ticks = {
        "degradation_threshold": tk.get("degradation_threshold", "number", None, check=_between(0.01, 1)),
        "nominal_tick_rate": tk.get("nominal_hz", "number", None, check=_positive),
        "clock_offset": tk.get("clock_offset", "string", None, allowed=("auto", "none", "estimate")),
    }
    tk.done()

    pb = top.sub("probes")
    probes: dict[str, Any] = {
        "replay_rate": pb.get("replay_rate", "number", None, check=_between(0, 50)),
        "replay_kinds": pb.get("replay_kinds", "strings", None),
        "race_sockets": pb.get("race_sockets", "int", None, check=_between(2, 64)),
        "max_expiry_wait": pb.get("max_expiry_wait", "duration", None),
        "rate_limit_endpoint": pb.get("rate_limit_endpoint", "string", None, allowed=("/request_token", "/join")),
        "rate_limit_steps": pb.get("rate_limit_steps", "numbers", None),
        "rate_limit_step_seconds": pb.get("rate_limit_step_seconds", "duration", None),
        "cors_origins": pb.get("cors_origins", "strings", None),
        "cors_refused_origins": pb.get("cors_refused_origins", "strings", None),
        "source_address": pb.get("source_address", "string", None),
        "seat_hoarding": pb.get("seat_hoarding", "int", None, check=_between(0, 10_000)),
    }
    for extra in ("seat_hoarding",):
        if probes[extra] and extra not in adapter.probe_extras:
            raise ScenarioError(
                path, f"probes.{extra}", f"not supported by protocol kind {kind!r} (only by: {_supporting(extra)})"
            )
    pb.done()

    if not adapter.embedded_backend and target is None:
        raise ScenarioError(
            path,
            "target.url",
            f"required for protocol kind {kind!r}: the embedded backend speaks only the reference protocol "
            "(or pass --target URL)",
        )

    gates = _gates(path, raw.get("gates", []))
    top.used.add("gates")
    top.done()

    try:
        reconnect = replace(ReconnectPolicy(), **{k: v for k, v in policy.items() if v is not None})
        probe_settings = replace(ProbeSettings(), **{k: v for k, v in probes.items() if v is not None})
        settings = PlayerSettings(
            reconnect=reconnect,
            protocol=protocol,
            protocol_kind=kind,
            protocol_options=protocol_options,
            probes=probe_settings,
            storms=tuple(storms),
            **{
                **adapter.implied_settings(protocol_options),
                **{k: v for k, v in {**player, **ticks}.items() if v is not None},
            },
        )
    except (SettingsError, PolicyError) as exc:
        raise ScenarioError(path, "", str(exc)) from None
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
    return Scenario(
        path=path,
        name=name,
        description=description,
        duration=duration,
        users=users,
        spawn_rate=spawn_rate,
        workers=workers,
        stages=tuple(stages),
        target=target,
        defects=tuple(defects),
        backend_args=tuple(backend_args),
        settings=settings,
        gates=gates,
        protocol_kind=kind,
    )


def _supporting(probe_setting: str) -> str:
    return ", ".join(k for k in ADAPTER_KINDS if probe_setting in adapters.get(k).probe_extras)


def _missing(path: str, key: str) -> Any:
    raise ScenarioError(path, key, "required")


def _gates(path: str, items: Any) -> tuple[Gate, ...]:
    if not isinstance(items, list):
        raise ScenarioError(path, "gates", "must be an array of expressions or tables")
    gates = []
    for i, item in enumerate(items):
        key = f"gates[{i}]"
        if isinstance(item, str):
            item = {"expr": item}
        g = _Reader(path, key, item)
        expr = g.get("expr", "string", None)
        if expr is None:
            _missing(path, f"{key}.expr")
        options = {
            "over": g.get("over", "duration", None, check=_positive),
            "abort_on_fail": g.get("abort_on_fail", "bool", False),
            "delay": g.get("delay", "duration", 0.0, check=_at_least(0)),
        }
        g.done()
        try:
            gates.append(parse(expr, **options))
        except GateSyntaxError as exc:
            raise ScenarioError(path, key, str(exc)) from None
    return tuple(gates)


def bundled() -> list[Path]:
    """The scenarios shipped in ``scenarios/`` beside the package (a source checkout)."""
    folder = Path(__file__).resolve().parents[2] / "scenarios"
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def summary_line(path: Path) -> str:
    """The first line of a scenario's header comment, for ``loadtest scenarios``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#"):
            return text.lstrip("# ").strip()
        if text:
            break
    return ""
