"""Configuration of the reference backend, and the defects it can be told to have.

One frozen dataclass carries every knob so that the command line, the in-process API and the
subprocess wrapper cannot drift apart: each of them builds a :class:`BackendConfig` and the
server reads nothing else.
"""

from __future__ import annotations

import ipaddress
import secrets
import ssl
from dataclasses import dataclass, field

from loadtest.errors import UsageError

#: Each defect turns off exactly one protection, so a harness run can prove it notices.
#: How much more simulation work a tick does under ``slow-tick``. Measured here: a full room of 64
#: costs 1.5 ms a tick at the default 10 sub-steps, so ten times (14.7 ms) sat right at the 16.7 ms
#: budget of 60 Hz and the defect showed or not by the machine's mood; thirty times (about 44 ms)
#: sinks a full room to about 20 Hz and crosses 90% of 60 Hz near 40 players.
SLOW_TICK_FACTOR = 30

DEFECTS: dict[str, str] = {
    "ticket-replay": "tickets are never consumed: a ticket can be used again until it expires",
    "ticket-race": "check and consume of a ticket are separated by an await (GET then DEL)",
    "ticket-no-expiry": "tickets never expire",
    "jwt-alg-none": "/join accepts unsigned tokens (alg: none)",
    "jwt-expired-ok": "/join accepts expired tokens",
    "no-rate-limit": "no endpoint is rate limited",
    "slow-tick": "each tick does thirty times the simulation work",
    "no-heartbeat": "the server never pings its players: frozen and half-open connections are never detected",
    "blocking-broadcast": "the tick loop waits for each player's send: one slow reader stalls the whole room",
    "seat-leak": "a dropped player's seat is held for a minute: a rejoin to its full room is refused",
}


#: Shortest HS256 signing key accepted: the hash's size (RFC 7518 section 3.2).
MIN_JWT_SECRET_BYTES = 32


class ConfigError(UsageError):
    """Raised when building a :class:`BackendConfig` with an impossible setting; the message names
    the setting and what is allowed."""


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``rate`` tokens per second refill a bucket holding at most ``burst``."""

    rate: float
    burst: int

    def validate(self, name: str) -> None:
        if not self.rate > 0:
            raise ConfigError(f"{name}: rate must be > 0 requests per second, got {self.rate!r}")
        if self.burst < 1:
            raise ConfigError(f"{name}: burst must be a whole number >= 1, got {self.burst!r}")


@dataclass(frozen=True)
class BackendConfig:
    """Everything the reference backend can be told; defaults match ``docs/protocol.md``."""

    host: str = "127.0.0.1"
    port: int = 8080
    game_servers: int = 1
    tick_rate: float = 60.0
    room_capacity: int = 64
    #: Physics sub-steps per tick; each one checks every pair of players in the room, so the
    #: tick cost grows with the square of the room size, as a real game server's does.
    substeps: int = 10
    ticket_ttl: float = 10.0
    token_ttl: float = 3600.0
    token_limit: RateLimit = RateLimit(5.0, 10)
    join_ip_limit: RateLimit = RateLimit(10.0, 20)
    join_player_limit: RateLimit = RateLimit(2.0, 5)
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ("http://localhost:8060", "http://127.0.0.1:8060")
    defects: frozenset[str] = frozenset()
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    tls_cert: str | None = None
    tls_key: str | None = None
    #: How long the ``ticket-race`` defect waits between checking and consuming a ticket,
    #: standing for one round trip to a shared ticket store.
    race_window: float = 0.05
    #: Seconds a connection may stay open without sending a complete request (slow or silent
    #: clients, half-open sockets) before it is closed.
    idle_timeout: float = 30.0
    max_body_bytes: int = 16 * 1024
    max_ws_message_bytes: int = 4 * 1024
    #: Seconds between the server's pings to a silent player; one that does not answer within half
    #: of it more is dropped (a frozen app, a half-open connection). Off with the ``no-heartbeat`` defect.
    heartbeat: float = 20.0
    #: How long the ``seat-leak`` defect holds a dropped player's seat.
    seat_leak_s: float = 60.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse impossible settings up front, naming the setting, so no run starts half-broken."""
        unknown = sorted(set(self.defects) - set(DEFECTS))
        if unknown:
            raise ConfigError(f"defect: unknown {', '.join(unknown)}; allowed: {', '.join(sorted(DEFECTS))}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535 (0 picks a free port), got {self.port}")
        if not 1 <= self.game_servers <= 64:
            raise ConfigError(f"game_servers: must be 1..64, got {self.game_servers}")
        if not 1 <= self.tick_rate <= 1000:
            raise ConfigError(f"tick_rate: must be 1..1000 Hz, got {self.tick_rate}")
        if not 1 <= self.room_capacity <= 10_000:
            raise ConfigError(f"room_capacity: must be 1..10000, got {self.room_capacity}")
        if not 0 <= self.substeps <= 1000:
            raise ConfigError(f"substeps: must be 0..1000, got {self.substeps}")
        for name in ("ticket_ttl", "token_ttl", "idle_timeout", "heartbeat", "seat_leak_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be > 0 seconds, got {getattr(self, name)}")
        self.token_limit.validate("token_limit")
        self.join_ip_limit.validate("join_ip_limit")
        self.join_player_limit.validate("join_player_limit")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ConfigError(f"trusted_proxies: {proxy!r} is not an IP address or network") from exc
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key: give both or neither")
        if self.tls_cert:
            # Load them now: a missing or unreadable file is a setting to fix, not a failure to
            # listen discovered after the game servers have started.
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.tls_cert, self.tls_key)
            except OSError as exc:  # ssl.SSLError is an OSError
                raise ConfigError(
                    f"tls_cert and tls_key: cannot load {self.tls_cert!r} with {self.tls_key!r}: {exc.strerror or exc}"
                ) from exc
        if not self.admin_token or len(self.admin_token) < 8:
            raise ConfigError("admin_token: must be at least 8 characters")
        if len(self.jwt_secret.encode("utf-8", "surrogatepass")) < MIN_JWT_SECRET_BYTES:
            # RFC 7518 section 3.2: an HS256 key shorter than the hash (32 bytes) is guessable offline
            # from any one token; PyJWT warns about it. Refused, so no run measures a weak backend.
            raise ConfigError(
                f"jwt_secret: must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256 "
                f"(got {len(self.jwt_secret.encode('utf-8', 'surrogatepass'))}); e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def effective_substeps(self) -> int:
        return self.substeps * (SLOW_TICK_FACTOR if "slow-tick" in self.defects else 1)

    @property
    def effective_heartbeat(self) -> float | None:
        """The heartbeat the matchmaker runs with: None under ``no-heartbeat``."""
        return None if "no-heartbeat" in self.defects else self.heartbeat

    @property
    def gameserver_args(self) -> tuple[str, ...]:
        """Defects a game-server process carries out itself, as its command-line flags."""
        return ("--blocking-broadcast",) if "blocking-broadcast" in self.defects else ()

    def has(self, defect: str) -> bool:
        """Whether ``defect`` is switched on; unknown names are a programming error, not False."""
        if defect not in DEFECTS:
            raise KeyError(defect)
        return defect in self.defects
