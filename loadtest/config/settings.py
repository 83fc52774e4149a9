"""What a simulated player does, as data: one :class:`PlayerSettings` per run.

Settings travel to every Locust process as JSON (the ``LOADTEST_SETTINGS`` environment variable
names a file; ``loadtest run`` writes it) and can be overridden with ``--lt-*`` options on a plain
``locust`` command line, which Locust forwards from master to workers
(:mod:`loadtest.config.options`). Each field's type, range, default and description is written
here once: scenario tables, ``--lt-*`` options and their help are made from these fields.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core.core_schema import ValidationInfo

from loadtest.adapters import AdapterKind
from loadtest.adapters.protocol import ProtocolConfig
from loadtest.config.model import Array, Model, Problem, Seconds, default_of, explain, render
from loadtest.errors import UsageError
from loadtest.runtime.backoff import ReconnectPolicy

SETTINGS_ENV = "LOADTEST_SETTINGS"
JOIN_MODES = ("quick", "create", "code")
CLOCK_OFFSETS = ("auto", "none", "estimate")
RATE_LIMIT_ENDPOINTS = ("/request_token", "/join")
#: The steps the rate-limit probe can probe, by name (``probes.rate_limit_endpoint = "join"``).
RATE_LIMIT_STEPS = ("token", "join")
#: The target's /metrics gauge of its nominal tick rate, unless ``ticks.nominal_gauge`` names another;
#: a sample named so, or ending in ``_`` and so (``mygame_nominal_tick_rate_hz``), counts.
NOMINAL_TICK_GAUGE = "nominal_tick_rate_hz"


class SettingsError(UsageError):
    """A setting is impossible: the message names the key and what is allowed."""


#: Secrets are read from the environment at the moment they are used, never kept in settings, so
#: they cannot reach run.json, a report or a log.
ADMIN_TOKEN_ENV = "LOADTEST_ADMIN_TOKEN"  # noqa: S105 - the variable name, not a secret
JWT_SECRET_ENV = "LOADTEST_JWT_SECRET"  # noqa: S105 - the variable name, not a secret
STORM_SIDES = ("client", "server", "stall")
#: Storms the harness's network relay carries out on the players' links (loadtest.runtime.relay.FAULTS).
NETWORK_STORMS = ("freeze", "blackhole", "reset", "latency_spike")
STORM_SIDES = (*STORM_SIDES, *NETWORK_STORMS)
FREEZE_ENDS = ("resume", "close")


def expand_addresses(spec: str) -> tuple[str, ...]:
    """``127.0.0.2-127.0.0.40`` or a comma list -> the addresses (checked as loopback by the settings)."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if "-" in part:
            try:
                first, last = (ipaddress.ip_address(x.strip()) for x in part.split("-", 1))
            except ValueError:
                raise SettingsError(f"source addresses: bad range {part!r}") from None
            if int(last) < int(first) or int(last) - int(first) > 65_536:
                raise SettingsError(f"source addresses: bad range {part!r}")
            out += [str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)]
        else:
            out.append(part)
    return tuple(out)


def _addresses(value: Any) -> Any:
    """A spec string, or an array of addresses and ranges, -> addresses."""
    try:
        if isinstance(value, str):
            return expand_addresses(value)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return expand_addresses(",".join(value))
    except SettingsError as exc:
        raise ValueError(str(exc).removeprefix("source addresses: ")) from None
    return value


def _loopback(addresses: tuple[str, ...]) -> tuple[str, ...]:
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IP address") from None
        if not ip.is_loopback:
            raise ValueError(f"{address} is not a loopback address")
    return addresses


def _replay_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    from loadtest.collectors.replay import KINDS  # the collector owns its kinds; imported late (cycle)

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return kinds


LoopbackAddresses = Annotated[Array(str), BeforeValidator(_addresses), AfterValidator(_loopback)]


# -- storm triggers: how a server-side storm is set off on a backend of any kind ---------------

STORM_TRIGGERS = ("chaos", "http", "command")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: ``${NAME}`` in a trigger's header value: the environment variable read when the storm fires.
ENV_REFERENCE = r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"


def _trigger_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://", "/")):
        raise ValueError(f"must start with http://, https:// or / (a path on the target), got {value!r}")
    return value


class StormTrigger(Model):
    """How a server-side storm is set off: the reference backend's chaos API, an HTTP request to
    the team's own admin endpoint, or a command (``kubectl rollout restart ...``, ``docker restart
    ...``). Header values name environment variables (``"Bearer ${MY_ADMIN_TOKEN}"``) read when the
    storm fires, so a secret never reaches the scenario, the run folder or a log; a command gets
    the environment of ``loadtest run`` and its argv is written down as given (no secrets in it)."""

    error = SettingsError

    kind: Literal[STORM_TRIGGERS] = Field(
        "chaos", description="chaos (the reference backend's chaos API), http (a request) or command"
    )
    method: Literal[HTTP_METHODS] = Field("POST", description="HTTP method of an http trigger")
    url: Annotated[str | None, AfterValidator(_trigger_url)] = Field(
        None, description="URL of an http trigger (a path starting with / is on the target)"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description='headers of an http trigger; values may name variables: "${NAME}"'
    )
    body: str | dict[str, Any] | None = Field(None, description="body of an http trigger (a table is sent as JSON)")
    argv: Array(str) = Field((), description='the command of a command trigger, e.g. ["docker", "restart", "game"]')
    timeout: Seconds = Field(30.0, gt=0, le=600, description="seconds the request or command may take")

    @model_validator(mode="after")
    def _complete(self) -> StormTrigger:
        if self.kind == "http" and not self.url:
            raise Problem("url", "an http trigger needs a url")
        if self.kind == "command" and not self.argv:
            raise Problem("argv", 'a command trigger needs argv, e.g. ["docker", "restart", "game-server"]')
        # A key of another kind of trigger, set to something, is a mistake, not a no-op (defaults
        # are allowed: the settings file carries every field).
        own = {"chaos": (), "http": ("method", "url", "headers", "body"), "command": ("argv",)}[self.kind]
        for key in ("method", "url", "headers", "body", "argv"):
            if key not in own and getattr(self, key) != default_of(type(self).model_fields[key]):
                raise Problem(
                    key, f"not a key of a {self.kind} trigger (its keys: {', '.join(('kind', *own, 'timeout'))})"
                )
        return self


class Storm(Model):
    """At ``at`` seconds into the run: drop ``fraction`` of sessions (client side: abrupt close;
    server side: the backend's chaos endpoint, with ``close_code``), or stall the tick loops."""

    error = SettingsError

    at: Seconds = Field(ge=0, description="seconds into the run")
    side: Literal[STORM_SIDES] = Field("server", description="client, server or stall")
    fraction: float = Field(1.0, gt=0, le=1, description="share of sessions dropped")
    close_code: int = Field(1012, ge=1000, le=4999, description="WebSocket close code of a server-side drop")
    seconds: Seconds = Field(2.0, gt=0, le=60, description="how long a stall lasts, s")
    optional: bool = Field(False, description="not setting it off is reported, not fatal to the run")
    # -- network storms (freeze, blackhole, reset, latency_spike), carried out by the relay
    then: Literal[FREEZE_ENDS] = Field("resume", description="after a freeze: resume, or close (the app is killed)")
    latency_ms: float = Field(500.0, gt=0, le=10_000, description="latency a latency_spike adds each way, ms")
    #: How a server-side storm is set off, and how long after it its effect is looked for.
    trigger: StormTrigger = Field(default_factory=StormTrigger, description="how a server-side storm is set off")
    window: Seconds = Field(
        10.0, gt=0, le=600, description="seconds after the trigger in which dropped sessions are its effect"
    )

    @model_validator(mode="after")
    def _trigger_side(self) -> Storm:
        if self.trigger.kind != "chaos" and self.side != "server":
            raise Problem("trigger", f"only a server-side storm has a trigger (this one is {self.side})")
        return self

    @classmethod
    def key_of(cls, loc: tuple[str | int, ...]) -> str:
        return render(("storm", *loc))

    @model_validator(mode="before")
    @classmethod
    def _spec(cls, data: Any) -> Any:
        """``at=10,side=client,fraction=0.5`` (the --lt-storm form) -> its table."""
        if not isinstance(data, str):
            return data
        values: dict[str, str] = {}
        for part in (p.strip() for p in data.split(",") if p.strip()):
            key, sep, value = part.partition("=")
            if not sep:
                raise Problem("", f"{part!r} is not key=value (keys: {', '.join(cls.model_fields)})")
            values[key.strip()] = value.strip()
        return values

    @classmethod
    def parse(cls, spec: str) -> Storm:
        """``at=10,side=client,fraction=0.5`` (the --lt-storm form)."""
        return cls.check(spec)


class ProbeSettings(Model):
    """Probes that run beside the load, from the coordinating process (master or local)."""

    error = SettingsError

    replay_rate: float = Field(0.0, ge=0, le=50, description="replay/forgery probes per second (0: off)")
    replay_kinds: Annotated[Array(str), AfterValidator(_replay_kinds)] = Field(
        (), description="replay probe kinds to run (empty: every kind)"
    )
    race_sockets: int = Field(8, ge=2, le=64, description="sockets racing for one ticket")
    max_expiry_wait: Seconds = Field(30.0, gt=0, description="longest a probe waits for a ticket or token to expire")
    rate_limit_endpoint: str | None = Field(
        None,
        description="probe this step's rate limit with rising bursts: token or join, or its path (none: off)",
    )
    rate_limit_steps: Array(Annotated[float, Field(gt=0, le=1000)]) = Field(
        (2.0, 5.0, 10.0, 20.0, 40.0), min_length=1, description="offered rates of the rate-limit probe, req/s"
    )
    rate_limit_step_seconds: Seconds = Field(3.0, ge=0.5, le=60, description="seconds per rate-limit step")
    cors_origins: Array(str) = Field((), description="origins that must be allowed (empty: CORS probe off)")
    #: Probes whose not running is reported, not fatal: "replay <kind>", "the rate-limit probe",
    #: "the CORS probe" (the names the integrity section uses).
    optional: Array(str) = Field((), description="probes whose not running does not void the run")
    cors_refused_origins: Array(str) = Field(("https://evil.example",), description="origins that must be refused")
    #: "auto" uses 127.0.0.253 (replay) and 127.0.0.254 (rate limit) against a loopback target.
    source_address: str = Field(
        "auto", description="source address of probe traffic, so probes and players do not share per-IP limits"
    )
    #: Only for backends whose adapter supports it (``Adapter.probe_extras``).
    seat_hoarding: int = Field(
        0, ge=0, le=10_000, description="seat reservations to ask for with one token after the rate-limit steps"
    )

    @classmethod
    def key_of(cls, loc: tuple[str | int, ...]) -> str:
        return render(("probes", *loc))


class NetworkSettings(Model):
    """The link a share of the players has, through the harness's TCP relay (loadtest.runtime.relay).

    Players on this link (every ``1/share``-th one) connect through a relay route of their own;
    the others connect directly, unless a network storm is planned or ``relay_all`` is on, in which
    case every player goes through the relay (on a clean link) so the storm can reach it.
    """

    error = SettingsError

    share: float = Field(0.0, ge=0, le=1, description="share of players on this link (0: none)")
    latency_ms: float = Field(0.0, ge=0, le=10_000, description="added latency each way, ms")
    jitter_ms: float = Field(0.0, ge=0, le=10_000, description="latency varies by up to this much either way, ms")
    bandwidth_kb_s: float = Field(0.0, ge=0, le=1_000_000, description="bandwidth cap each way, KB/s (0: none)")
    slow_close_ms: float = Field(0.0, ge=0, le=60_000, description="a close is passed on this much later, ms")
    start_s: Seconds = Field(0.0, ge=0, description="seconds into the run the bad link begins")
    stop_s: Seconds | None = Field(None, gt=0, description="seconds into the run the bad link ends (none: never)")
    relay_all: bool = Field(False, description="every player through the relay, even on a clean link")
    rejoin_same_room: bool = Field(
        False, description="after a lost session, join the same room by its code first (refused as full is counted)"
    )

    @classmethod
    def key_of(cls, loc: tuple[str | int, ...]) -> str:
        return render(("player", "network", *loc))

    @model_validator(mode="after")
    def _window(self) -> NetworkSettings:
        if self.stop_s is not None and self.stop_s <= self.start_s:
            raise Problem("stop_s", f"must be after start_s ({self.start_s:g} s), got {self.stop_s:g}")
        return self

    def active(self, elapsed: float) -> bool:
        """Whether the bad link is on ``elapsed`` seconds into the run."""
        return elapsed >= self.start_s and (self.stop_s is None or elapsed < self.stop_s)


#: Where a settings field lives in a scenario file, when not in ``[player]``.
SCENARIO_KEYS = {
    "degradation_threshold": "ticks.degradation_threshold",
    "nominal_tick_rate": "ticks.nominal_hz",
    "nominal_tick_gauge": "ticks.nominal_gauge",
    "clock_offset": "ticks.clock_offset",
    "protocol": "protocol",
    "protocol_kind": "protocol.kind",
    "protocol_options": "protocol",
    "probes": "probes",
    "storms": "events",
    "stages": "load.stages",
}


class PlayerSettings(Model):
    error = SettingsError
    unknown_key = "unknown player setting"

    session_length: Seconds = Field(30.0, gt=0, description="seconds a player stays in a session (then plays again)")
    input_rate: float = Field(20.0, gt=0, description="inputs per second while playing")
    join_mode: Literal[JOIN_MODES] = Field("quick", description="how a player joins: quick, create or code")
    room: str | None = Field(None, description="room code for join mode code")
    sessions_per_user: int = Field(0, ge=0, description="sessions each player plays, then stops (0: no limit)")
    think_time: Seconds = Field(1.0, ge=0, description="seconds between leaving and playing again")
    connect_timeout: Seconds = Field(10.0, gt=0, description="seconds a connect may take")
    close_timeout: Seconds = Field(2.0, gt=0, description="seconds a close handshake may take")
    max_http_in_flight: int = Field(4, ge=1, le=64, description="HTTP requests one process has in flight")
    honour_retry_after: bool = Field(True, description="wait as long as a 429's Retry-After asks")
    reconnect: ReconnectPolicy = Field(default_factory=ReconnectPolicy)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    #: Which adapter speaks to the backend (loadtest.adapters) and its own options, as JSON values.
    protocol_kind: AdapterKind = "reference"
    protocol_options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    # TLS and addressing
    ca_bundle: str | None = Field(None, description="CA bundle for https:// and wss:// targets")
    insecure: bool = Field(False, description="skip TLS verification (reported)")
    source_addresses: LoopbackAddresses = Field((), description="loopback source addresses, e.g. 127.0.0.2-127.0.0.50")
    # collectors
    degradation_threshold: float = Field(0.9, gt=0, le=1, description="fraction of the nominal tick rate")
    nominal_tick_rate: float | None = Field(
        None, gt=0, description="ticks per second (none: from the welcome, else the target's gauge)"
    )
    nominal_tick_gauge: str = Field(
        NOMINAL_TICK_GAUGE,
        min_length=1,
        max_length=200,
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="the target's /metrics gauge of its nominal tick rate (also matches <prefix>_<name>)",
    )
    scrape_metrics: bool = True
    scrape_interval: Seconds = Field(5.0, gt=0, description="seconds between scrapes of the target's /metrics")
    clock_offset: Literal[CLOCK_OFFSETS] = Field(
        "auto", description="subtract an estimated client/server clock offset from lag (auto: remote targets)"
    )
    out_dir: str | None = Field(None, description="run folder for collector data")
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    storms: tuple[Storm, ...] = ()
    #: Load shape as (duration s, users, spawn rate) stages; empty = Locust's -u/-r/-t.
    stages: tuple[tuple[float, int, float], ...] = ()

    @classmethod
    def key_of(cls, loc: tuple[str | int, ...]) -> str:
        if not loc:
            return "player"
        head = SCENARIO_KEYS.get(str(loc[0]), f"player.{loc[0]}")
        return head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])

    @field_validator("protocol_options")
    @classmethod
    def _adapter_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The adapter's options, checked and completed with its defaults."""
        kind = info.data.get("protocol_kind")
        if kind is None:
            return value
        from loadtest import adapters

        try:
            return adapters.get(kind).read_options(value)
        except ValidationError as exc:
            loc, text = explain(exc)
            raise Problem(render(loc), text) from None

    @model_validator(mode="after")
    def _consistent(self) -> PlayerSettings:
        if self.join_mode == "code" and not self.room:
            raise Problem("room", "join mode 'code' needs a room code")
        self._rate_limit_step()
        return self

    def _rate_limit_step(self) -> None:
        """``probes.rate_limit_endpoint`` names a step of this run's protocol (by name or path)."""
        value = self.probes.rate_limit_endpoint
        if value is None:
            return
        from loadtest.adapters import protocol_for

        protocol = protocol_for(self)
        if protocol.resolve_step(value) in RATE_LIMIT_STEPS:
            return
        paths = protocol.step_paths()
        allowed = ", ".join(f"{step!r} or {paths[step]!r}" for step in RATE_LIMIT_STEPS)
        raise Problem("probes", f"rate_limit_endpoint {value!r} is no step of this protocol (allowed: {allowed})")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlayerSettings:
        return cls.check(data)

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
        """Apply ``--lt-*`` options. Values typed into Locust's web form arrive as strings and are
        converted by the fields' types; a bad one raises :class:`SettingsError` naming the option."""
        from loadtest.config.options import apply

        return apply(self, options)
