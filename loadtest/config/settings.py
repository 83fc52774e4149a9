"""What a simulated player does, as data: one :class:`PlayerSettings` per run.

Settings travel to every Locust process as JSON (the ``LOADTEST_SETTINGS`` environment variable
names a file; ``loadtest run`` writes it) and can be overridden with ``--lt-*`` options on a plain
``locust`` command line, which Locust forwards from master to workers.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from loadtest.adapters.protocol import ProtocolConfig
from loadtest.errors import UsageError
from loadtest.runtime.backoff import ReconnectPolicy

SETTINGS_ENV = "LOADTEST_SETTINGS"
JOIN_MODES = ("quick", "create", "code")


class SettingsError(UsageError):
    """Raised when a player, probe or storm setting is impossible (from ``--lt-*`` options, the
    settings file or a scenario): the message names the key and what is allowed."""


#: Secrets are read from the environment at the moment they are used, never kept in settings, so
#: they cannot reach run.json, a report or a log.
ADMIN_TOKEN_ENV = "LOADTEST_ADMIN_TOKEN"  # noqa: S105 - the variable name, not a secret
JWT_SECRET_ENV = "LOADTEST_JWT_SECRET"  # noqa: S105 - the variable name, not a secret
STORM_SIDES = ("client", "server", "stall")


@dataclass(frozen=True)
class Storm:
    """At ``at`` seconds into the run: drop ``fraction`` of sessions (client side: abrupt close;
    server side: the backend's chaos endpoint, with ``close_code``), or stall the tick loops."""

    at: float
    side: str = "server"
    fraction: float = 1.0
    close_code: int = 1012
    seconds: float = 2.0  # for side "stall"

    def __post_init__(self) -> None:
        if self.side not in STORM_SIDES:
            raise SettingsError(f"storm.side: must be one of {', '.join(STORM_SIDES)}, got {self.side!r}")
        if self.at < 0:
            raise SettingsError(f"storm.at: must be >= 0 seconds, got {self.at}")
        if not 0 < self.fraction <= 1:
            raise SettingsError(f"storm.fraction: must be in (0, 1], got {self.fraction}")
        if not 0 < self.seconds <= 60:
            raise SettingsError(f"storm.seconds: must be in (0, 60], got {self.seconds}")

    @classmethod
    def parse(cls, spec: str) -> Storm:
        """``at=10,side=client,fraction=0.5`` (the --lt-storm form)."""
        values: dict[str, Any] = {}
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            if not sep or key not in {f.name for f in fields(cls)}:
                raise SettingsError(
                    f"storm: {part!r} is not key=value with a key of at, side, fraction, close_code, seconds"
                )
            try:
                values[key] = value if key == "side" else (int(value) if key == "close_code" else float(value))
            except ValueError:
                raise SettingsError(f"storm.{key}: {value!r} is not a number") from None
        if "at" not in values:
            raise SettingsError("storm: 'at' (seconds into the run) is required")
        return cls(**values)


@dataclass(frozen=True)
class ProbeSettings:
    """Probes that run beside the load, from the coordinating process (master or local)."""

    replay_rate: float = 0.0  # replay probes started per second; 0 = off
    replay_kinds: tuple[str, ...] = ()  # empty = every kind
    race_sockets: int = 8
    max_expiry_wait: float = 30.0  # longest a probe waits for a ticket or token to expire
    rate_limit_endpoint: str | None = None  # "/request_token" or "/join"; None = off
    rate_limit_steps: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0)
    rate_limit_step_seconds: float = 3.0
    cors_origins: tuple[str, ...] = ()  # origins that must be allowed; empty = CORS probe off
    cors_refused_origins: tuple[str, ...] = ("https://evil.example",)
    #: Source address for probe traffic, so probes and players do not share per-IP limits;
    #: "auto" uses 127.0.0.253 (replay) and 127.0.0.254 (rate limit) against a loopback target.
    source_address: str = "auto"
    #: Seat reservations to ask for with one token after the rate-limit steps (0 = off): how many
    #: seats one client can hold without playing. Only for backends whose adapter supports it.
    seat_hoarding: int = 0

    def __post_init__(self) -> None:
        if self.replay_rate < 0 or self.replay_rate > 50:
            raise SettingsError(f"probes.replay_rate: must be 0..50 per second, got {self.replay_rate}")
        if not 2 <= self.race_sockets <= 64:
            raise SettingsError("probes.race_sockets: must be 2..64")
        from loadtest.collectors.replay import KINDS

        unknown = sorted(set(self.replay_kinds) - set(KINDS))
        if unknown:
            raise SettingsError(f"probes.replay_kinds: unknown {', '.join(unknown)}; known: {', '.join(KINDS)}")
        if self.rate_limit_endpoint not in (None, "/request_token", "/join"):
            raise SettingsError("probes.rate_limit_endpoint: must be /request_token or /join")
        if not self.rate_limit_steps or any(not 0 < r <= 1000 for r in self.rate_limit_steps):
            raise SettingsError("probes.rate_limit_steps: rates must be in (0, 1000] requests per second")
        if not 0.5 <= self.rate_limit_step_seconds <= 60:
            raise SettingsError("probes.rate_limit_step_seconds: must be 0.5..60")
        if not 0 <= self.seat_hoarding <= 10_000:
            raise SettingsError("probes.seat_hoarding: must be 0..10000 reservations")


@dataclass(frozen=True)
class PlayerSettings:
    session_length: float = 30.0  # seconds a player stays before leaving (then plays again)
    input_rate: float = 20.0  # inputs per second while in a session
    join_mode: str = "quick"
    room: str | None = None  # for join_mode "code"
    sessions_per_user: int = 0  # 0 = play until the test stops
    think_time: float = 1.0  # pause between leaving and playing again
    connect_timeout: float = 10.0
    close_timeout: float = 2.0
    max_http_in_flight: int = 4
    honour_retry_after: bool = True
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    #: Which adapter speaks to the backend (loadtest.adapters) and its own options, as JSON values.
    protocol_kind: str = "reference"
    protocol_options: dict[str, Any] = field(default_factory=dict)
    # TLS and addressing
    ca_bundle: str | None = None
    insecure: bool = False
    source_addresses: tuple[str, ...] = ()
    # collectors
    degradation_threshold: float = 0.9  # fraction of nominal tick rate
    nominal_tick_rate: float | None = None  # None: taken from the welcome message
    scrape_metrics: bool = True
    scrape_interval: float = 5.0
    #: Subtract an estimated client/server clock offset from lag (auto: only for non-loopback targets).
    clock_offset: str = "auto"
    out_dir: str | None = None
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    storms: tuple[Storm, ...] = ()
    #: Load shape as (duration s, users, spawn rate) stages; empty = Locust's -u/-r/-t.
    stages: tuple[tuple[float, int, float], ...] = ()

    def __post_init__(self) -> None:
        positive = ("session_length", "input_rate", "connect_timeout", "close_timeout", "scrape_interval")
        for key in positive:
            if not getattr(self, key) > 0:
                raise SettingsError(f"player.{key}: must be > 0, got {getattr(self, key)!r}")
        if self.think_time < 0:
            raise SettingsError(f"player.think_time: must be >= 0, got {self.think_time!r}")
        if self.join_mode not in JOIN_MODES:
            raise SettingsError(f"player.join_mode: must be one of {', '.join(JOIN_MODES)}, got {self.join_mode!r}")
        if self.join_mode == "code" and not self.room:
            raise SettingsError("player.room: join_mode 'code' needs a room code")
        if not 1 <= self.max_http_in_flight <= 64:
            raise SettingsError("player.max_http_in_flight: must be 1..64")
        if not 0 < self.degradation_threshold <= 1:
            raise SettingsError("ticks.degradation_threshold: must be in (0, 1]")
        if self.clock_offset not in ("auto", "none", "estimate"):
            raise SettingsError("ticks.clock_offset: must be auto, none or estimate")
        for address in self.source_addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise SettingsError(f"player.source_addresses: {address!r} is not an IP address") from None
            if not ip.is_loopback:
                raise SettingsError(f"player.source_addresses: {address} is not a loopback address")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlayerSettings:
        try:
            return cls._from_dict(data)
        except TypeError as exc:  # an unknown or missing key in a nested table
            raise SettingsError(f"settings: {exc}") from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> PlayerSettings:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown player setting(s): {', '.join(unknown)}")
        if isinstance(data.get("reconnect"), dict):
            data["reconnect"] = ReconnectPolicy(**data["reconnect"])
        if isinstance(data.get("protocol"), dict):
            data["protocol"] = ProtocolConfig(**data["protocol"])
        if "source_addresses" in data:
            data["source_addresses"] = tuple(data["source_addresses"])
        if isinstance(data.get("probes"), dict):
            probes = dict(data["probes"])
            for key in ("replay_kinds", "rate_limit_steps", "cors_origins", "cors_refused_origins"):
                if key in probes:
                    probes[key] = tuple(probes[key])
            data["probes"] = ProbeSettings(**probes)
        if "stages" in data:
            data["stages"] = tuple((float(d), int(u), float(r)) for d, u, r in data["stages"])
        if "storms" in data:
            data["storms"] = tuple(Storm(**st) if isinstance(st, dict) else st for st in data["storms"])
        return cls(**data)

    @classmethod
    def load(cls, options: Any = None) -> PlayerSettings:
        """Settings for this process: the file named by ``LOADTEST_SETTINGS``, then ``--lt-*`` options."""
        path = os.environ.get(SETTINGS_ENV)
        settings = cls()
        if path:
            with open(path, encoding="utf-8") as fh:
                settings = cls.from_dict(json.load(fh))
        return settings.with_options(options) if options is not None else settings

    def with_options(self, options: Any) -> PlayerSettings:
        """Apply ``--lt-*`` options. Values typed into Locust's web form arrive as strings, so every
        value is converted here; a bad one raises :class:`SettingsError` naming the option."""
        try:
            return self._with_options(options)
        except SettingsError:
            raise
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"--lt-* option: {exc}") from None

    def _with_options(self, options: Any) -> PlayerSettings:
        changes: dict[str, Any] = {}
        converters = {"session_length": float, "input_rate": float, "sessions_per_user": int, "think_time": float}
        for key in ("session_length", "input_rate", "join_mode", "room", "sessions_per_user", "think_time"):
            value = getattr(options, f"lt_{key}", None)
            if value not in (None, ""):
                changes[key] = converters.get(key, str)(value)
        for key in ("ca_bundle", "out_dir"):
            value = getattr(options, f"lt_{key}", None)
            if value not in (None, ""):
                changes[key] = str(value)
        if getattr(options, "lt_insecure", False):
            changes["insecure"] = True
        addresses = getattr(options, "lt_source_addresses", None)
        if addresses:
            changes["source_addresses"] = expand_addresses(addresses)
        policy: dict[str, Any] = {}
        converters = {"kind": str, "base": float, "multiplier": float, "cap": float, "max_attempts": int}
        for key, convert in converters.items():
            value = getattr(options, "lt_reconnect" if key == "kind" else f"lt_reconnect_{key}", None)
            if value not in (None, ""):
                policy[key] = convert(value)
        jitter = getattr(options, "lt_reconnect_jitter", None)
        if jitter:
            low, _, high = str(jitter).partition(",")
            policy["jitter_min"], policy["jitter_max"] = float(low), float(high or low)
        if policy:
            changes["reconnect"] = replace(self.reconnect, **policy)
        probes: dict[str, Any] = {}
        for key, convert in (("replay_rate", float), ("rate_limit_endpoint", str)):
            value = getattr(options, f"lt_{key}", None)
            if value not in (None, ""):
                probes[key] = convert(value)
        for key in ("replay_kinds", "cors_origins", "cors_refused_origins"):
            value = getattr(options, f"lt_{key}", None)
            if value:
                probes[key] = tuple(value)
        steps = getattr(options, "lt_rate_limit_steps", None)
        if steps:
            probes["rate_limit_steps"] = tuple(float(x) for x in str(steps).split(","))
        if probes:
            changes["probes"] = replace(self.probes, **probes)
        storms = getattr(options, "lt_storm", None)
        if storms:
            changes["storms"] = tuple(Storm.parse(spec) for spec in storms)
        return replace(self, **changes) if changes else self


def expand_addresses(spec: str) -> tuple[str, ...]:
    """``127.0.0.2-127.0.0.40`` or a comma list -> the addresses, validated as loopback."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if "-" in part:
            first, last = (ipaddress.ip_address(x.strip()) for x in part.split("-", 1))
            if int(last) < int(first) or int(last) - int(first) > 65_536:
                raise SettingsError(f"source addresses: bad range {part!r}")
            out += [str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)]
        else:
            out.append(part)
    return tuple(out)
