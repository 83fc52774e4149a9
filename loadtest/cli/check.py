"""``loadtest check``: one player walks the flow against a target, step by step, before any load.

Why: when a first run against a team's own backend fails at login or join, the counters say
*that* it failed, not *which* ``[protocol]`` key is wrong. Here one player logs in, joins,
connects, plays a few seconds, leaves and tries its ticket again, with the run's own
:class:`~loadtest.adapters.protocol.Protocol` (so what passes here is what the players will
speak) and the engine's own WebSocket transport. Each step prints its status and the shape of
the reply (keys and value types, secrets masked); where a reply lacks a field the protocol
expects, it names the key to set and the fields it saw instead. ``loadtest serve --check`` is
this same walk against the reference backend it just started (:mod:`loadtest.backend.selfcheck`).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from loadtest.adapters import protocol_for
from loadtest.adapters.protocol import ACK, PATCH, TICK, WELCOME, Protocol, ProtocolConfig, ProtocolError, decode_json
from loadtest.config.settings import PlayerSettings
from loadtest.exitcodes import ExitCode

log = logging.getLogger(__name__)

#: Keys whose values are credentials: never printed, whatever their length.
SECRET_WORDS = (
    "token",
    "ticket",
    "seat",
    "secret",
    "jwt",
    "key",
    "password",
    "auth",
    "session",
    "reservation",
    "cookie",
)
#: Longest string value shown as it is (longer ones are masked: a credential under another name).
SHOWN_CHARS = 16
#: Most messages the play step reads, whatever its length.
MAX_MESSAGES = 5_000
#: Inputs sent: one every this many messages.
INPUT_EVERY = 3


@dataclass
class Step:
    """One step of the walk: what was asked, what came back, what to change."""

    name: str
    request: str
    ok: bool = False
    status: str = ""
    shapes: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


@dataclass
class Walk:
    """The whole walk; the numbers are what ``loadtest serve --check`` reports."""

    steps: list[Step] = field(default_factory=list)
    ticks: int = 0
    tick_rate_hz: float = 0.0
    acked: int = 0
    replay_refused: bool | None = None

    @property
    def flow_works(self) -> bool:
        """Login, join, connect, ticks and a clean leave: what a run's players need."""
        return bool(self.steps) and all(s.ok for s in self.steps if s.name != "replay") and self.ticks > 0


# -- shapes and masks ---------------------------------------------------------------------------


def _secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def _type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def shape(value: Any, depth: int = 0, hidden: Collection[str] = ()) -> str:
    """``{token: str (masked, 212 chars), room: "r-1", expires_in: int}``: keys and types, never a
    secret (a key named like one, one of ``hidden``, or any long string)."""
    if isinstance(value, dict):
        if depth >= 3:
            return f"object ({len(value)} keys)"
        return (
            "{"
            + ", ".join(f"{k}: {_value_shape(str(k), v, depth, hidden)}" for k, v in list(value.items())[:20])
            + (", ..." if len(value) > 20 else "")
            + "}"
        )
    if isinstance(value, list):
        return f"array ({len(value)})" + (f" of {shape(value[0], depth + 1)}" if value else "")
    return _type_name(value)


def _value_shape(key: str, value: Any, depth: int, hidden: Collection[str] = ()) -> str:
    if isinstance(value, str):
        if _secret(key) or key in hidden or len(value) > SHOWN_CHARS:
            return f"str (masked, {len(value)} chars)"
        return json.dumps(value)
    if isinstance(value, dict | list):
        return shape(value, depth + 1, hidden)
    return _type_name(value)


def mask_url(url: str) -> str:
    """The connect URL without its query (the ticket is in it)."""
    parts = urlsplit(url)
    return f"{parts.path}?{'&'.join(p.split('=')[0] + '=...' for p in parts.query.split('&') if p)}"


# -- what to set ----------------------------------------------------------------------------------


def _alike(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


#: Fields that hold credentials: their candidates are the long strings first (a ticket is not a room code).
CREDENTIAL_KEYS = ("token_field", "ticket_field")


def candidates(
    reply: dict[str, Any],
    key: str,
    wanted: str,
    kind: type | tuple[type, ...] = str,
    rank: Callable[[str], float] | None = None,
) -> list[str]:
    """Keys of ``reply`` that could be the field named ``wanted``: values of the right type, by
    ``rank`` (how a value behaved, when known), then the most alike in name to ``wanted`` or to the
    reference protocol's name for ``protocol.key`` (``access_token`` is most like ``token``)."""
    default = str(getattr(ProtocolConfig(), key, wanted))
    keys = [str(k) for k, v in reply.items() if isinstance(v, kind) and not isinstance(v, bool) and (v or v == 0)]
    if rank is None and key in CREDENTIAL_KEYS:
        rank = lambda k: float(len(str(reply[k])) >= SHOWN_CHARS)  # noqa: E731 - one line, used once
    return sorted(keys, key=lambda k: (-(rank(k) if rank else 0.0), -max(_alike(wanted, k), _alike(default, k)), k))


def field_hint(
    reply: Any,
    key: str,
    wanted: str,
    kind: type | tuple[type, ...] = str,
    what: str = "the reply",
    rank: Callable[[str], float] | None = None,
) -> str:
    """``no `token` in the reply; it has `access_token`: set `protocol.token_field = "access_token"``."""
    if not isinstance(reply, dict):
        return f"{what} is not a JSON object, so it has no `{wanted}`"
    found = candidates(reply, key, wanted, kind, rank)
    if not found:
        return f"no `{wanted}` in {what}, and nothing like it (keys: {', '.join(map(str, reply)) or 'none'})"
    listed = ", ".join(f"`{k}`" for k in found[:4])
    return f"no `{wanted}` in {what}; it has {listed}: set `protocol.{key} = {json.dumps(found[0])}`"


#: Reply fields the flow does without but a run reads: (key, value types, what it costs to miss it).
LOGIN_EXTRAS = (
    ("player_id_field", str, "players are told apart by it"),
    ("expires_in_field", (int, float), "the jwt_expired probe waits out a token's lifetime"),
)
JOIN_EXTRAS = (
    ("expires_in_field", (int, float), "the ticket_expired probe waits out a ticket's lifetime"),
    ("room_field", str, "players join a room by its code"),
)


def optional_hints(reply: Any, config: ProtocolConfig, extras: tuple[tuple[str, Any, str], ...]) -> list[str]:
    """Fields a working flow does not need but a run does, named with the key to set when the reply
    has a likely candidate: every one at once, so one pass of ``check`` finds them all."""
    if not isinstance(reply, dict):
        return []
    used = {config.token_field, config.ticket_field}
    hints = []
    for key, kind, why in extras:
        wanted = str(getattr(config, key))
        if wanted in reply:
            continue
        found = [k for k in candidates(reply, key, wanted, kind) if k not in used]
        if found:
            hints.append(
                f"optional: no `{wanted}` in the reply; it has `{found[0]}`: set "
                f"`protocol.{key} = {json.dumps(found[0])}` ({why})"
            )
    return hints


def _status_hint(step: str, status: int, protocol: Protocol) -> str | None:
    """Which key a refused step most likely needs (reference-shaped protocols only)."""
    c = protocol.config
    if status == 404:
        key, value = {"login": ("token_path", c.token_path), "join": ("join_path", c.join_path)}.get(
            step, ("connect_path", c.connect_path)
        )
        return f"{value} is not found there: set `protocol.{key}` to your backend's path for this step"
    if step == "join" and status in (401, 403):
        return (
            f"the token was refused: check `protocol.auth_scheme` (now {c.auth_scheme!r}) and "
            f"`protocol.token_field` (now {c.token_field!r})"
        )
    if step == "connect" and status in (400, 401, 403):
        return (
            f"the ticket was refused: check `protocol.ticket_param` (now {c.ticket_param!r}) "
            "and `protocol.connect_path`"
        )
    return None


# -- the walk -------------------------------------------------------------------------------------


def walk(
    base_url: str,
    settings: PlayerSettings,
    *,
    seconds: float = 3.0,
    name: str = "loadtest-check",
    protocol: Protocol | None = None,
) -> Walk:
    """Walk one player through the flow; never raises for anything the target does."""
    with requests.Session() as http:
        http.verify = False if settings.insecure else (settings.ca_bundle or True)
        return _walk(http, base_url.rstrip("/"), settings, seconds, name, protocol or protocol_for(settings))


def _walk(
    http: requests.Session, base: str, settings: PlayerSettings, seconds: float, name: str, protocol: Protocol
) -> Walk:
    reference = settings.protocol_kind == "reference"
    result = Walk()
    credentials = (protocol.config.token_field, protocol.config.ticket_field)

    def post(step: Step, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        started = time.monotonic()
        try:
            r = http.post(base + path, json=body, headers=headers, timeout=settings.connect_timeout)
        except requests.RequestException as exc:
            step.status = f"no answer ({type(exc).__name__})"
            step.hints.append(f"the target did not answer {path}: is {base} the backend's base URL?")
            return None
        step.status = f"{r.status_code}  {(time.monotonic() - started) * 1000:.0f} ms"
        try:
            reply = decode_json(r.text) if r.content else None
        except ProtocolError as exc:
            reply = None
            step.shapes.append(f"not JSON ({exc.reason}): {len(r.content)} bytes")
        else:
            step.shapes.append(shape(reply, hidden=credentials))
        if not 200 <= r.status_code < 300:
            detail = protocol.describe_status(r.status_code, reply)
            step.status += f" ({detail})" if detail else ""
            hint = _status_hint(step.name, r.status_code, protocol) if reference else None
            step.hints.append(hint or f"{path} answered {r.status_code}")
            return None
        return reply

    def parse(step: Step, reply: Any, parser: Callable[[Any], Any], key: str, wanted: str) -> Any:
        try:
            grant = parser(reply)
        except ProtocolError as exc:
            step.hints.append(field_hint(reply, key, wanted) if reference else f"the adapter cannot read it: {exc}")
            return None
        step.ok = True
        return grant

    def exchange(
        step_name: str,
        request: tuple[str, Any],
        headers: dict[str, str] | None,
        parser: Callable[[Any], Any],
        key: str,
        extras: tuple[tuple[str, Any, str], ...],
    ) -> Any:
        """One HTTP step of the flow (login, join): its request, its reply's shape, what it gave."""
        step = Step(step_name, "")
        result.steps.append(step)
        path, body = request
        step.request = f"POST {path}"
        reply = post(step, path, body, headers)
        if reply is None and step.hints:
            return None
        parsed = parse(step, reply, parser, key, getattr(protocol.config, key))
        if parsed is not None and reference:
            step.hints += optional_hints(reply, protocol.config, extras)
        return parsed

    token = exchange("login", protocol.token_request(name), None, protocol.parse_token, "token_field", LOGIN_EXTRAS)
    if token is None:
        return result
    grant = exchange(
        "join",
        protocol.join_request(settings.join_mode, settings.room),
        protocol.auth_headers(token.token),
        protocol.parse_join,
        "ticket_field",
        JOIN_EXTRAS,
    )
    if grant is None:
        return result

    from loadtest.runtime.target import WsTarget

    try:
        target = WsTarget(base, settings.insecure, settings.ca_bundle)
    except OSError as exc:
        step = Step("connect", "", status=f"cannot resolve the target: {exc}")
        result.steps.append(step)
        return result
    url = protocol.connect_url(target.base, grant)
    spec = target.spec(url, protocol, settings, None, measure=False)
    asyncio.run(_play(result, spec, protocol, settings, seconds, reference))
    return result


async def _connect(spec: Any, settings: PlayerSettings) -> Any:
    from loadtest.runtime.transport import choose, connector, open_tcp

    sock = await asyncio.wait_for(open_tcp(spec), settings.connect_timeout)
    try:
        return await asyncio.wait_for(connector(choose())(spec, sock, log), settings.connect_timeout)
    except BaseException:
        sock.close()  # a refused or failed upgrade leaves no socket behind (closing twice is harmless)
        raise


async def _open(spec: Any, protocol: Protocol, settings: PlayerSettings, step: Step, reference: bool) -> Any:
    """The connection and its session, or None with the step's status and hints filled in."""
    from loadtest.runtime.transport import HandshakeFailed, HandshakeRefused

    started = time.monotonic()
    try:
        conn = await _connect(spec, settings)
    except HandshakeRefused as exc:
        step.status = f"refused {exc.status}"
        hint = _status_hint("connect", exc.status, protocol) if reference else None
        step.hints.append(hint or f"the WebSocket upgrade was refused with {exc.status}")
        return None
    except (HandshakeFailed, OSError, TimeoutError) as exc:
        step.status = f"failed ({type(exc).__name__})"
        step.hints.append(f"no WebSocket at {mask_url(spec.url)}: check `protocol.connect_path`")
        return None
    session = protocol.session()
    try:
        opening = await asyncio.wait_for(session.open(conn), settings.connect_timeout)
    except Exception as exc:  # an adapter's join that failed in any way (a timeout included)
        conn.abort()
        step.status = f"joined but not admitted ({type(exc).__name__})"
        return None
    if not opening.ok:
        conn.abort()
        step.status = f"not admitted: {opening.reason}" + (f" {opening.status}" if opening.status else "")
        return None
    step.status = f"open  {(time.monotonic() - started) * 1000:.0f} ms"
    step.ok = True
    return conn, session


async def _play(
    result: Walk, spec: Any, protocol: Protocol, settings: PlayerSettings, seconds: float, reference: bool
) -> None:
    connect = Step("connect", f"WS {mask_url(spec.url)}")
    result.steps.append(connect)
    opened = await _open(spec, protocol, settings, connect, reference)
    if opened is None:
        return
    conn, session = opened
    play = Step("play", f"{seconds:g} s, an input every {INPUT_EVERY} messages")
    result.steps.append(play)
    kinds: Counter[str] = Counter()
    samples: dict[str, Any] = {}  # the first message of each kind, and the last
    lasts: dict[str, Any] = {}
    problems: Counter[str] = Counter()
    first = last = None
    seq = 0
    deadline = time.monotonic() + seconds
    try:
        for count in range(1, MAX_MESSAGES + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(conn.recv(), left)
            except TimeoutError:
                break
            try:
                kind, tick, ts, ack, _ = session.parse_message(raw)
            except ProtocolError as exc:
                problems[exc.reason] += 1
                kind = "unreadable"
            kinds[kind] += 1
            samples.setdefault(kind, raw)
            lasts[kind] = raw
            if kind == TICK:
                first = first or (tick, ts)
                last = (tick, ts)
            if kind in (TICK, ACK):
                result.acked = max(result.acked, ack)
            if count % INPUT_EVERY == 0:
                seq += 1
                await conn.send(session.input_message(seq, 1.0, 0.0))
    except Exception as exc:  # the transport's Closed, or anything else the connection raised
        play.status = f"closed by the server after {sum(kinds.values())} messages ({type(exc).__name__})"
    result.ticks = kinds[TICK] + kinds[PATCH]
    if first and last and last[1] > first[1]:
        result.tick_rate_hz = (last[0] - first[0]) / (last[1] - first[1])
    counts = ", ".join(f"{n} {k}" for k, n in kinds.most_common()) or "no messages"
    rate = f", {result.tick_rate_hz:.1f} Hz" if result.tick_rate_hz else ""
    play.status = play.status or f"{counts}{rate}, inputs acknowledged up to #{result.acked}"
    for kind, raw in samples.items():
        play.shapes.append(f"{kind}: {_message_shape(raw)}")
    play.ok = result.ticks > 0
    if reference:
        play.hints += _message_hints(protocol, samples, lasts, kinds, problems, result.acked, seq)
    elif not play.ok:
        play.hints.append(f"no message was read as a tick ({dict(problems) or 'none unreadable'})")

    leave = Step("leave", "close" + (" with the protocol's leave message" if session.leave_message() else ""))
    result.steps.append(leave)
    try:
        await asyncio.wait_for(conn.close(session.leave_message()), settings.close_timeout + 1)
        leave.status = f"closed {conn.close_code}" if conn.close_code else "closed"
        leave.ok = True
    except Exception as exc:  # a close that did not complete is a finding of this step, not a crash
        conn.abort()
        leave.status = f"did not close cleanly ({type(exc).__name__})"
        leave.ok = True  # the players' runs survive it; the status says what happened

    replay = Step("replay", "the same ticket again")
    result.steps.append(replay)
    again = Step("replay", "")
    reopened = await _open(spec, protocol, settings, again, reference=False)
    if reopened is None:
        result.replay_refused = True
        replay.ok = True
        replay.status = f"refused ({again.status}): tickets are single-use"
    else:
        result.replay_refused = False
        reopened[0].abort()
        replay.status = "ACCEPTED: a used ticket let a second connection in (see the replay-attack scenario)"


def _message_shape(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        return f"binary, {len(raw)} bytes"
    try:
        return shape(decode_json(raw))
    except ProtocolError:
        return f"not JSON, {len(raw)} chars"


def _decoded(raw: Any) -> dict[str, Any]:
    with contextlib.suppress(ProtocolError):
        value = decode_json(raw) if isinstance(raw, str) else None
        if isinstance(value, dict):
            return value
    return {}


def _growth(first: Any, last: Any) -> Callable[[str], float]:
    """How much each number grew from the first message of a kind to the last: a tick number
    grows with every tick, a clock with time, an acknowledgement with the inputs; a count does not."""
    a, b = _decoded(first), _decoded(last)

    def grew(key: str) -> float:
        x, y = a.get(key), b.get(key)
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        return float(y - x) if numbers and y > x else 0.0  # type: ignore[operator]

    return grew


def _message_hints(
    protocol: Protocol,
    samples: dict[str, Any],
    lasts: dict[str, Any],
    kinds: Counter[str],
    problems: Counter[str],
    acked: int,
    sent: int,
) -> list[str]:
    """Which message key to set when no tick, or no acknowledgement, was read."""
    c = protocol.config
    messages = []
    for raw in samples.values():
        with contextlib.suppress(ProtocolError):
            value = decode_json(raw) if isinstance(raw, str) else None
            if isinstance(value, dict):
                messages.append(value)
    hints: list[str] = []
    if not kinds[TICK] and messages:
        typed = [m for m in messages if c.type_field in m]
        if not typed:
            # The type is a key every message has, with a text value.
            common = {k: v for k, v in messages[0].items() if isinstance(v, str) and all(k in m for m in messages)}
            hints.append(field_hint(common, "type_field", c.type_field, what="the messages"))
        elif problems.get("bad_tick"):
            tick = next(m for m in typed if m.get(c.type_field) == c.tick_type)
            grew = _growth(samples.get("unreadable"), lasts.get("unreadable"))
            if type(tick.get(c.tick_field)) is not int:
                hints.append(field_hint(tick, "tick_field", c.tick_field, int, "the tick messages", grew))
            else:
                # A clock is a number that grows, in seconds (a float, where the counters are ints).
                clocks = {k: v for k, v in tick.items() if k != c.tick_field}
                rank = lambda k: float(grew(k) > 0) + float(isinstance(clocks[k], float))  # noqa: E731
                hints.append(
                    field_hint(clocks, "timestamp_field", c.timestamp_field, (int, float), "the tick messages", rank)
                )
        else:
            seen = sorted({str(m[c.type_field]) for m in typed})
            guess = next((t for t in seen if t not in (c.welcome_type, c.lobby_type)), seen[0])
            hints.append(
                f"no message has `{c.type_field}` = {c.tick_type!r}; they have {', '.join(map(repr, seen))}: "
                f"set `protocol.tick_type = {json.dumps(guess)}`"
            )
    if kinds[TICK] and sent and not acked:
        tick = next((m for m in messages if m.get(c.type_field) == c.tick_type), None)
        grew = _growth(samples.get(TICK), lasts.get(TICK))
        # An acknowledgement grows as inputs are applied: without one that grew, the inputs are
        # what the server ignores.
        others = {k: v for k, v in (tick or {}).items() if k not in (c.tick_field, c.timestamp_field) and grew(k)}
        if tick is not None and c.ack_field not in tick and others:
            hints.append(field_hint(others, "ack_field", c.ack_field, int, "the tick messages", grew))
        else:
            hints.append(
                f"no input was acknowledged: check `protocol.input_type` (now {c.input_type!r}), "
                f"`protocol.seq_field` (now {c.seq_field!r}) and `protocol.ack_field` (now {c.ack_field!r})"
            )
    if kinds[TICK] and not kinds[WELCOME]:
        hints.append(
            f"no `{c.welcome_type}` message, so no nominal tick rate from it: set `ticks.nominal_hz` "
            "(or `protocol.welcome_type`, if the first message has another type)"
        )
    return hints


# -- the command ----------------------------------------------------------------------------------


def report(result: Walk, target: str, kind: str, out: Callable[[str], None] = print) -> int:
    """Print the walk; the exit code: 0 the flow works, 1 it stops at a step."""
    out(f"loadtest check: {target} (protocol kind {kind})")
    for i, step in enumerate(result.steps, 1):
        mark = "ok  " if step.ok else "FAIL"
        out(f"  {mark} {i} {step.name:<8} {step.request}  ->  {step.status}")
        for line in step.shapes:
            out(f"              {line}")
        for hint in step.hints:
            out(f"         -> {hint}")
    if result.flow_works:
        out("the flow works: `loadtest init` writes a scenario for it, `loadtest run` runs it")
        return ExitCode.OK
    stopped = next((s.name for s in result.steps if not s.ok), "play")
    out(f"the flow stops at {stopped}: set what the arrows say (--set protocol.KEY=VALUE to try it here)")
    return ExitCode.FAILED
