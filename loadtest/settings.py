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

from loadtest.backoff import ReconnectPolicy
from loadtest.protocol import ProtocolConfig

SETTINGS_ENV = "LOADTEST_SETTINGS"
JOIN_MODES = ("quick", "create", "code")


class SettingsError(ValueError):
    """A setting is impossible: the message names the key and what is allowed."""


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
        changes: dict[str, Any] = {}
        for key in (
            "session_length",
            "input_rate",
            "join_mode",
            "room",
            "sessions_per_user",
            "think_time",
            "ca_bundle",
            "out_dir",
        ):
            value = getattr(options, f"lt_{key}", None)
            if value not in (None, ""):
                changes[key] = value
        if getattr(options, "lt_insecure", False):
            changes["insecure"] = True
        addresses = getattr(options, "lt_source_addresses", None)
        if addresses:
            changes["source_addresses"] = expand_addresses(addresses)
        policy = getattr(options, "lt_reconnect", None)
        if policy:
            changes["reconnect"] = replace(self.reconnect, kind=policy)
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
