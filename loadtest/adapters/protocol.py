"""How a simulated player talks to a backend: configuration first, a subclass when that is not enough.

Paths, JSON field names, the auth header scheme, the ticket parameter and message type names are
:class:`ProtocolConfig` values, so a backend that renames ``ticket`` to ``seat`` needs no code.
A backend with a different shape (binary frames, another login flow) subclasses :class:`Protocol`
and overrides the step that differs; every method is one step of the flow.

Replies are parsed defensively: anything that is not the expected JSON shape raises
:class:`ProtocolError` with a short, countable reason, never a ``KeyError`` that kills a user.
Numbers are held to what their field can mean, at parse time: a tick number past 2**53 or a
timestamp that is not a finite date between 1970 and 5138 would otherwise reach arithmetic that
overflows (``int(10**400 / ...)``) far from the message that caused it, on the engine's thread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import orjson

from loadtest.errors import LoadtestError

#: Largest tick / ack / sequence number a message may carry: beyond it a float loses integers.
MAX_COUNTER = 2**53
#: Largest absolute timestamp (seconds): about the year 5138, far past any clock, far below
#: where float arithmetic on it loses the milliseconds a lag is made of.
MAX_TIMESTAMP = 1e11
#: Deepest JSON nesting a reply may have; the reference protocol needs two levels.
MAX_DEPTH = 64



class ProtocolError(LoadtestError):
    """Raised when the backend answers with something the protocol does not allow (a reply or a
    frame of the wrong shape); ``reason`` is short and countable. Players and probes count it and
    go on; it never ends a run."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


#: The flow's steps, by the names metrics, gates and probes use (``http.token.p95_ms``), whatever
#: their paths are on a given backend: a scenario written for one backend then fits another.
TOKEN_STEP, JOIN_STEP, CONNECT_STEP = "token", "join", "connect"
FLOW_STEPS = (TOKEN_STEP, JOIN_STEP, CONNECT_STEP)
#: What an extra step's name may be: it becomes one part of a dotted metric name.
STEP_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: The reference backend's paths, which scenarios used as step names before steps had names:
#: ``probes.rate_limit_endpoint = "/join"`` still means the join step on any backend.
LEGACY_STEP_PATHS = {"/request_token": TOKEN_STEP, "/join": JOIN_STEP}


@dataclass(frozen=True)
class ProtocolConfig:
    token_path: str = "/request_token"
    join_path: str = "/join"
    connect_path: str = "/connect"
    metrics_path: str = "/metrics"
    auth_scheme: str = "Bearer"
    ticket_param: str = "ticket"
    # reply fields
    token_field: str = "token"
    player_id_field: str = "player_id"
    expires_in_field: str = "expires_in"
    ticket_field: str = "ticket"
    room_field: str = "room"
    # message fields and type names
    type_field: str = "type"
    tick_field: str = "tick"
    timestamp_field: str = "ts"
    ack_field: str = "ack"
    players_field: str = "players"
    seq_field: str = "seq"
    welcome_type: str = "welcome"
    tick_type: str = "tick"
    lobby_type: str = "lobby"
    input_type: str = "input"
    #: Extra HTTP steps a player subclass makes, by name: ``{profile = "/api/v2/profile"}``. Their
    #: metrics are ``http.<name>.*``; a gate may name them as it names ``token`` and ``join``.
    steps: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, path in self.steps.items():
            if not STEP_NAME.fullmatch(name) or name in FLOW_STEPS:
                raise ValueError(
                    f"step name {name!r} must be lower-case letters, digits and _ (not one of {', '.join(FLOW_STEPS)})"
                )
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"step {name!r}: its path must start with '/', got {path!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class TokenGrant:
    token: str
    player_id: str
    expires_in: float | None


@dataclass(frozen=True)
class JoinGrant:
    ticket: str
    room: str
    expires_in: float | None


# Message kinds the engine understands.
TICK, WELCOME, LOBBY, OTHER = "tick", "welcome", "lobby", "other"
#: A state update without the server's tick number or clock (Colyseus patches): the engine counts
#: it by arrival time, against :attr:`Protocol.patch_interval`.
PATCH = "patch"
#: A message that only acknowledges an input (a PING answer): its ``ack`` is the input's ``seq``.
ACK = "ack"


@dataclass(frozen=True)
class Opening:
    """How a session's first moments went, for protocols whose join completes after the handshake.

    Some backends accept every WebSocket upgrade and only then admit or refuse the client with a
    message (Colyseus answers a bad seat reservation with an ERROR frame). Until that answer the
    session is not "connected": a replay probe would otherwise count a refused ticket as accepted.
    ``resume`` is what the server handed out for resuming the session later (a reconnection
    token); it stays on the player's side and never reaches a log.
    """

    ok: bool
    reason: str = ""
    status: int | None = None
    body: Any = None
    resume: Any = None


OPENED = Opening(True)


class Protocol:
    """The reference protocol (docs/protocol.md), driven by a :class:`ProtocolConfig`.

    Methods run on two sides: the HTTP steps in Locust greenlets, :meth:`parse_message` and
    :meth:`input_message` on the WebSocket engine's thread, once per message. Keep those two
    pure and cheap.

    The engine asks :meth:`session` for the object that speaks one session (the reference protocol
    is stateless, so it is this object); a protocol that keeps per-session state (pending pings,
    a join handshake) returns a fresh one each time.
    """

    #: Expected seconds between state updates, for protocols that send :data:`PATCH` messages.
    patch_interval: float | None = None
    #: HTTP statuses that mean "your token is no good": the player logs in again.
    auth_failed_statuses: tuple[int, ...] = (401,)

    def __init__(self, config: ProtocolConfig | None = None) -> None:
        self.config = config or ProtocolConfig()
        c = self.config
        self._type, self._tick, self._ts, self._ack = (
            c.type_field,
            c.tick_field,
            c.timestamp_field,
            c.ack_field,
        )
        self._players = c.players_field
        self._kinds = {c.tick_type: TICK, c.welcome_type: WELCOME, c.lobby_type: LOBBY}
        self._tick_type = c.tick_type
        self._fast = _tick_decoder(c)

    # -- step names -------------------------------------------------------------------------

    def step_paths(self) -> dict[str, str]:
        """Each HTTP step of the flow by its name, with the path it has on this backend.

        Metrics are recorded under the path a request went to; summaries and gates name the step,
        so a gate on ``http.join.p95_ms`` means the same on every backend.
        """
        return {TOKEN_STEP: self.config.token_path, JOIN_STEP: self.config.join_path, **self.config.steps}

    def step_of(self, path: str) -> str | None:
        """The step a request to ``path`` belongs to, or None for a path outside the flow (a
        subclass's own request keeps its path as its name)."""
        for step, step_path in self.step_paths().items():
            if path == step_path:
                return step
        return None

    def resolve_step(self, name_or_path: str) -> str | None:
        """The step a setting names, by its name, by its path on this backend, or by the
        reference backend's path for it (:data:`LEGACY_STEP_PATHS`); None when it names none."""
        if name_or_path in self.step_paths():
            return name_or_path
        return self.step_of(name_or_path) or LEGACY_STEP_PATHS.get(name_or_path)

    # -- HTTP steps (gevent side) ---------------------------------------------------------

    def token_request(self, name: str) -> tuple[str, dict[str, Any]]:
        return self.config.token_path, {"name": name}

    def parse_token(self, body: object) -> TokenGrant:
        data = _object(body, "token reply")
        token = _string(data, self.config.token_field, "token reply")
        player = data.get(self.config.player_id_field)
        return TokenGrant(
            token, player if isinstance(player, str) else "", _seconds(data, self.config.expires_in_field)
        )

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"{self.config.auth_scheme} {token}"}

    def join_request(self, mode: str, room: str | None = None) -> tuple[str, dict[str, Any]]:
        """``mode`` is ``quick``, ``create`` or ``code`` (with ``room``)."""
        if mode == "create":
            return self.config.join_path, {"create": True}
        if mode == "code":
            return self.config.join_path, {self.config.room_field: room}
        return self.config.join_path, {}

    def parse_join(self, body: object) -> JoinGrant:
        data = _object(body, "join reply")
        ticket = _string(data, self.config.ticket_field, "join reply")
        room = data.get(self.config.room_field)
        return JoinGrant(ticket, room if isinstance(room, str) else "", _seconds(data, self.config.expires_in_field))

    def connect_url(self, ws_base: str, grant: JoinGrant) -> str:
        return f"{ws_base}{self.config.connect_path}?{urlencode({self.config.ticket_param: grant.ticket})}"

    # -- WebSocket (engine thread, per message) -------------------------------------------

    def parse_message(self, raw: str | bytes) -> tuple[str, int, float, int, int]:
        """``(kind, tick, server_ts, ack, players)``; non-tick kinds carry zeros.

        Raises :class:`ProtocolError` for anything malformed, which the engine counts.

        A well-formed tick in text takes the typed decoder (:func:`_tick_decoder`, 0.12 µs with every
        check in C, against 0.7 µs for orjson plus the checks in Python); anything it refuses, and
        every other kind, is read again by :meth:`parse_carefully`, which alone says why.
        """
        if type(raw) is not str:  # msgspec does not check the UTF-8 of fields it skips in bytes
            return self.parse_carefully(raw)
        try:
            m = self._fast(raw)
        except Exception:  # refused, or too deep for it: the careful path says what it is
            return self.parse_carefully(raw)
        if m.kind != self._tick_type:
            return self.parse_carefully(raw)
        return TICK, m.tick, m.ts, m.ack, m.players

    def parse_carefully(self, raw: str | bytes) -> tuple[str, int, float, int, int]:
        """:meth:`parse_message` with every check in Python: the reference for the fast path
        (tests/unit/adapters/test_protocol_fast.py holds the two to the same answers)."""
        try:
            msg = orjson.loads(raw)  # 0.25 µs against json.loads' 1.8-2.4 µs per tick; strict JSON
        except (ValueError, UnicodeDecodeError):
            # Rare: read it again the careful way for the precise reason (too deep, a number out of
            # range, not JSON at all), or a value the field checks below refuse.
            msg = loads(raw, check_depth=False)
        if not isinstance(msg, dict):
            raise ProtocolError("not_an_object")
        kind = self._kinds.get(msg.get(self._type), OTHER)
        if kind != TICK:
            return kind, 0, 0.0, 0, 0
        tick, ts = msg.get(self._tick), msg.get(self._ts)
        if type(tick) is not int or type(ts) not in (float, int):
            raise ProtocolError("bad_tick", "tick must be an integer and ts a number")
        if not 0 <= tick <= MAX_COUNTER:
            raise ProtocolError("tick_out_of_range", "tick must be 0..2**53")
        if not -MAX_TIMESTAMP <= ts <= MAX_TIMESTAMP:  # NaN fails every comparison
            raise ProtocolError("ts_out_of_range", "ts must be a finite number of seconds")
        ack = msg.get(self._ack, 0)
        players = msg.get(self._players, 0)
        return (
            TICK,
            tick,
            float(ts),
            ack if type(ack) is int and 0 <= ack <= MAX_COUNTER else 0,
            players if type(players) is int and 0 <= players <= MAX_COUNTER else 0,
        )

    def welcome_tick_rate(self, raw: str | bytes) -> float | None:
        """The nominal tick rate a welcome message announces, if it does."""
        try:
            rate = loads(raw, check_depth=False).get("tick_rate")
        except (ProtocolError, AttributeError):
            return None
        return rate_or_none(rate)

    def input_message(self, seq: int, x: float, y: float) -> str | bytes:
        return f'{{"{self._type}":"{self.config.input_type}","{self.config.seq_field}":{seq},"x":{x:.3f},"y":{y:.3f}}}'

    # -- session life (engine thread) -----------------------------------------------------

    def session(self) -> Protocol:
        """The object that speaks one session; stateless protocols are their own."""
        return self

    async def open(self, ws: Any) -> Opening:
        """Complete the join after the WebSocket handshake (the engine bounds it by the connect
        timeout); the reference protocol has nothing to do."""
        return OPENED

    def leave_message(self) -> str | bytes | None:
        """Sent before a close we chose, for backends that tell a leave from a drop by a message."""
        return None

    # -- resuming and errors (gevent side) -------------------------------------------------

    def resume_grant(self, previous: JoinGrant, resume: Any) -> JoinGrant | None:
        """A grant that resumes ``previous`` with the ``resume`` the server handed out, or None
        when the protocol has no resumption (the reference backend: a fresh ticket every time)."""
        return None

    def describe_status(self, status: int, body: object) -> str:
        """A short name for an HTTP error status, beyond its number ("" when the number says it all)."""
        return ""


_COUNTER = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]
_TIMESTAMP = Annotated[float, msgspec.Meta(ge=-MAX_TIMESTAMP, le=MAX_TIMESTAMP)]


def _tick_decoder(c: ProtocolConfig) -> Any:
    """A typed decoder of a tick with ``c``'s field names: the same checks as
    :meth:`Protocol.parse_carefully` (integers, not booleans, within range; a finite timestamp),
    done by msgspec; it raises on anything else, including an ``ack`` or ``players`` the careful
    path would read as absent, so that path decides every case but the plain one."""
    names = {"kind": c.type_field, "tick": c.tick_field, "ts": c.timestamp_field}
    names |= {"ack": c.ack_field, "players": c.players_field}
    if len(set(names.values())) < len(names):
        return _never  # fields that share a name: only the careful path knows what that means
    struct = msgspec.defstruct(
        "Tick",
        [("kind", str), ("tick", _COUNTER), ("ts", _TIMESTAMP), ("ack", _COUNTER, 0), ("players", _COUNTER, 0)],
        rename=names,
        gc=False,
    )
    return msgspec.json.Decoder(struct).decode


def _never(_raw: str | bytes) -> Any:
    raise msgspec.ValidationError("fields share a name")


def _object(body: object, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError("wrong_shape", f"{what} is not a JSON object")
    return body


def _string(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError("missing_field", f"{what} has no string {key!r}")
    return value


#: Longest lifetime (``expires_in``) taken at its word: ten years. Beyond, it is treated as absent.
MAX_LIFETIME = 10 * 365 * 86400.0


def _seconds(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= MAX_LIFETIME:
        return float(value)  # NaN fails the comparison; 10**400 never reaches float()
    return None


def rate_or_none(value: object, limit: float = 100_000.0) -> float | None:
    """A positive, finite rate (Hz) no larger than ``limit``, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= limit:
        return float(value)
    return None


def loads(raw: str | bytes, *, check_depth: bool = True) -> Any:
    """JSON, or :class:`ProtocolError`: ``invalid_json``, or ``too_deep`` for nesting past
    :data:`MAX_DEPTH` (``check_depth``) or deep enough to take the C parser to a ``RecursionError``."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):  # ValueError includes ints of more than 4,300 digits
        raise ProtocolError("invalid_json") from None
    except RecursionError:
        raise ProtocolError("too_deep") from None
    if check_depth and isinstance(value, dict | list) and _too_deep(value):
        raise ProtocolError("too_deep")
    return value


def _too_deep(value: dict | list) -> bool:
    """Whether ``value`` nests deeper than :data:`MAX_DEPTH`; iterative, so it cannot recurse."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def decode_json(text: str) -> object:
    """JSON of an HTTP reply, or :class:`ProtocolError` (``invalid_json``, ``too_deep``)."""
    return loads(text)


#: What each :class:`ProtocolConfig` key means, for ``loadtest init`` (which lists every key in the
#: scenario it writes) and the docs: stated once, beside nothing else that would repeat it.
PROTOCOL_KEY_HELP = {
    "token_path": "path of the login step (POST; its reply holds the player's token)",
    "join_path": "path of the join step (POST with the token; its reply holds the ticket)",
    "connect_path": "path of the WebSocket the ticket opens",
    "metrics_path": "path of the target's Prometheus metrics (its own counters, compared with ours)",
    "auth_scheme": "scheme of the join step's Authorization header: <scheme> <token>",
    "ticket_param": "query parameter of the connect URL that carries the ticket",
    "token_field": "field of the login reply that holds the token",
    "player_id_field": "field of the login reply that holds the player's id",
    "expires_in_field": "field of the login and join replies that holds a lifetime, s",
    "ticket_field": "field of the join reply that holds the ticket",
    "room_field": "field of the join reply (and of a join-by-code request) that holds the room",
    "type_field": "field of every message that names its type",
    "tick_field": "field of a tick message that holds the tick number",
    "timestamp_field": "field of a tick message that holds the server's clock, s",
    "ack_field": "field of a tick message that holds the latest input seq the server applied",
    "players_field": "field of a tick message that holds the room's player count",
    "seq_field": "field of an input message that holds its sequence number",
    "welcome_type": "type of the first message (its tick_rate is the nominal tick rate)",
    "tick_type": "type of a tick (state update) message",
    "lobby_type": "type of a lobby (room roster) message",
    "input_type": "type of the player's input message",
}
