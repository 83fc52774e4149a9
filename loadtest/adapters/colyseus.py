"""Colyseus 0.18 as a target: its matchmaking flow and binary frames behind the harness's protocol.

The flow has the shape of the reference protocol, so players, collectors and gates are unchanged:

- token: ``POST /auth/anonymous`` → a JWT (no expiry);
- ticket: ``POST /matchmake/<method>/<room>`` with the JWT → a single-use seat reservation
  (``sessionId``, ``roomId``, ``processId``) that lives ``seatReservationTimeout`` seconds;
- connect: ``ws://host/<processId>/<roomId>?sessionId=…``; the server admits the client with a
  JOIN_ROOM frame (carrying a reconnection token), which the client must acknowledge, or refuses
  it with an ERROR frame - after a successful WebSocket upgrade, which is why the join is
  completed in :meth:`ColyseusSession.open` before a session counts as connected;
- play: ROOM_STATE_PATCH frames at the room's patch rate are counted as ticks by arrival time
  (Colyseus sends no tick number or server clock); a PING every few inputs measures the round trip;
- leave: LEAVE_ROOM, so the room sees a consented leave and does not hold the seat for a
  reconnection; resume: the same URL with ``reconnectionToken``.

Errors come as HTTP statuses 520-525 and ERROR frames ``[code][message]``; both are named by
:data:`ERROR_NAMES`. Facts measured against Colyseus 0.18 are in docs/adapters.md.

Frame numbers and strings use @colyseus/schema's encoding, which looks like msgpack but is
little-endian, so :func:`decode_number` and :func:`decode_string` read it here; ROOM_DATA
payloads are real msgpack and go through the ``msgpack`` package.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

import msgpack

from loadtest.adapters import Adapter, Option
from loadtest.adapters.protocol import (
    ACK,
    JOIN_STEP,
    OTHER,
    PATCH,
    TOKEN_STEP,
    JoinGrant,
    Opening,
    Protocol,
    ProtocolConfig,
    ProtocolError,
    TokenGrant,
)
from loadtest.config.settings import PlayerSettings

# Message codes (byte 0, low five bits).
JOIN_ROOM, ERROR, LEAVE_ROOM, ROOM_DATA, ROOM_STATE, ROOM_STATE_PATCH, PING = 10, 11, 12, 13, 14, 15, 18
JOIN_ACK = bytes([JOIN_ROOM])
LEAVE = bytes([LEAVE_ROOM])
PING_FRAME = bytes([PING])
METHODS = ("joinOrCreate", "create", "join", "joinById")

#: Colyseus error codes, as HTTP statuses of the matchmaker and in ERROR frames.
ERROR_NAMES = {
    520: "no_handler",  # no such room name or method
    521: "concurrent_request",
    522: "invalid_room",  # room invalid or disposed
    523: "unhandled",  # an exception on the server (also a missing token)
    524: "expired",  # seat reservation or reconnection token expired or already used
    525: "auth_failed",
}

_PATCH_RESULT = (PATCH, 0, 0.0, 0, 0)
_OTHER_RESULT = (OTHER, 0, 0.0, 0, 0)
MAX_PENDING_PINGS = 64


@dataclass(frozen=True)
class ColyseusOptions:
    """The ``[protocol]`` keys of a Colyseus target, as the protocol reads them; their types,
    ranges and defaults are the :data:`ADAPTER`'s ``options``."""

    room: str
    method: str
    join_options: dict[str, Any]
    auth_path: str
    seat_reservation_timeout: float
    patch_rate: float
    input_type: str
    ping_every: int

    @classmethod
    def from_settings(cls, settings: PlayerSettings) -> ColyseusOptions:
        return cls.from_options(settings.protocol_options)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ColyseusOptions:
        o = ADAPTER.read_options(options)
        return cls(join_options=o.pop("options"), **o)


@dataclass(frozen=True)
class ColyseusGrant(JoinGrant):
    """A seat reservation: ``ticket`` is the sessionId, ``room`` the roomId."""

    process_id: str = ""
    #: The reconnection token when this grant resumes a dropped session.
    reconnection_token: str | None = field(default=None, repr=False)


# -- the schema encoding's numbers and strings (little-endian, msgpack-like) ---------------------

_FIXED = {0xCC: "<B", 0xCD: "<H", 0xCE: "<I", 0xCF: "<Q", 0xD0: "<b", 0xD1: "<h", 0xD2: "<i", 0xD3: "<q"}
_FIXED.update({0xCA: "<f", 0xCB: "<d"})


def decode_number(data: bytes, at: int) -> tuple[float | int, int]:
    """A number at ``at``: (value, next offset); :class:`ProtocolError` when it is not one."""
    try:
        prefix = data[at]
        if prefix < 0x80:
            return prefix, at + 1
        if prefix >= 0xE0:
            return prefix - 0x100, at + 1
        fmt = _FIXED.get(prefix)
        if fmt is None:
            raise ProtocolError("bad_number", f"prefix 0x{prefix:02x}")
        size = struct.calcsize(fmt)
        return struct.unpack_from(fmt, data, at + 1)[0], at + 1 + size
    except (IndexError, struct.error):
        raise ProtocolError("truncated_frame") from None


def decode_string(data: bytes, at: int) -> tuple[str, int]:
    try:
        prefix = data[at]
        if 0xA0 <= prefix <= 0xBF:
            length, at = prefix & 0x1F, at + 1
        elif prefix in (0xD9, 0xDA, 0xDB):
            fmt = {0xD9: "<B", 0xDA: "<H", 0xDB: "<I"}[prefix]
            length = struct.unpack_from(fmt, data, at + 1)[0]
            at += 1 + struct.calcsize(fmt)
        else:
            raise ProtocolError("bad_string", f"prefix 0x{prefix:02x}")
    except (IndexError, struct.error):
        raise ProtocolError("truncated_frame") from None
    if at + length > len(data):
        raise ProtocolError("truncated_frame")
    return data[at : at + length].decode("utf-8", errors="replace"), at + length


def encode_string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 32:
        return bytes([0xA0 | len(raw)]) + raw
    if len(raw) < 256:
        return bytes([0xD9, len(raw)]) + raw
    raise ValueError("message types longer than 255 bytes are not supported")


def decode_error(frame: bytes) -> tuple[int, str]:
    """An ERROR frame's (code, message)."""
    code, at = decode_number(frame, 1)
    if not isinstance(code, int):
        # A float code (NaN, 1e308) means nothing as an error code, and int() would raise on it.
        if not (code == code and abs(code) < 2**31 and code == int(code)):
            raise ProtocolError("bad_number", "error code is not an integer")
        code = int(code)
    message = decode_string(frame, at)[0] if at < len(frame) else ""
    return code, message


def join_token(frame: bytes) -> str:
    """The reconnection token a JOIN_ROOM frame carries (``0a [u8 len][token] …``)."""
    if len(frame) < 2 or len(frame) < 2 + frame[1]:
        raise ProtocolError("truncated_frame", "JOIN_ROOM")
    return frame[2 : 2 + frame[1]].decode("utf-8", errors="replace")


def room_data(message_type: str, payload: Any) -> bytes:
    """A ROOM_DATA frame, as a client's ``room.send(type, payload)`` makes it."""
    return bytes([ROOM_DATA]) + encode_string(message_type) + msgpack.packb(payload)


def error_reason(code: int) -> str:
    name = ERROR_NAMES.get(code)
    return f"error_{code}_{name}" if name else f"error_{code}"


# -- the protocol ------------------------------------------------------------------------------


class ColyseusProtocol(Protocol):
    """Colyseus's HTTP steps; :meth:`session` gives the per-session frame speaker."""

    # A token Colyseus's JWT.verify rejects answers 523 (an exception in onAuth), not 525.
    auth_failed_statuses = (523, 525)

    def __init__(self, options: ColyseusOptions) -> None:
        self.options = options
        super().__init__(
            ProtocolConfig(
                token_path=options.auth_path,
                join_path=self._matchmake_path(options.method, options.room),
                connect_path="",
            )
        )
        self.patch_interval = options.patch_rate

    @classmethod
    def from_settings(cls, settings: PlayerSettings) -> ColyseusProtocol:
        return cls(ColyseusOptions.from_settings(settings))

    @staticmethod
    def _matchmake_path(method: str, target: str) -> str:
        return f"/matchmake/{method}/{quote(target, safe='')}"

    def step_of(self, path: str) -> str | None:
        """Every matchmaking request is the join step, whichever method or room its path names
        (``create`` and ``joinById`` join modes go to paths of their own)."""
        if path == self.options.auth_path:
            return TOKEN_STEP
        return JOIN_STEP if path.startswith("/matchmake/") else None

    def token_request(self, name: str) -> tuple[str, dict[str, Any]]:
        return self.options.auth_path, {}

    def parse_token(self, body: object) -> TokenGrant:
        if not isinstance(body, dict) or not isinstance(body.get("token"), str) or not body["token"]:
            raise ProtocolError("missing_field", "auth reply has no string 'token'")
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        player = user.get("id") or user.get("anonymousId") or ""
        return TokenGrant(body["token"], str(player), None)

    def join_request(self, mode: str, room: str | None = None) -> tuple[str, dict[str, Any]]:
        if mode == "code" and room:
            return self._matchmake_path("joinById", room), dict(self.options.join_options)
        if mode == "create":
            return self._matchmake_path("create", self.options.room), dict(self.options.join_options)
        return self.config.join_path, dict(self.options.join_options)

    def parse_join(self, body: object) -> ColyseusGrant:
        if not isinstance(body, dict):
            raise ProtocolError("wrong_shape", "seat reservation is not a JSON object")
        values = {}
        for key in ("sessionId", "roomId", "processId"):
            value = body.get(key)
            if not isinstance(value, str) or not value:
                raise ProtocolError("missing_field", f"seat reservation has no string {key!r}")
            values[key] = value
        return ColyseusGrant(
            values["sessionId"], values["roomId"], self.options.seat_reservation_timeout, values["processId"]
        )

    def connect_url(self, ws_base: str, grant: JoinGrant) -> str:
        if not isinstance(grant, ColyseusGrant):
            raise ProtocolError("wrong_grant", "a Colyseus connect needs a seat reservation")
        query = {"sessionId": grant.ticket}
        if grant.reconnection_token:
            query["reconnectionToken"] = grant.reconnection_token
        return f"{ws_base}/{quote(grant.process_id, safe='')}/{quote(grant.room, safe='')}?{urlencode(query)}"

    def resume_grant(self, previous: JoinGrant, resume: Any) -> JoinGrant | None:
        if not isinstance(previous, ColyseusGrant) or not isinstance(resume, str) or not resume:
            return None
        return replace(previous, reconnection_token=resume)

    def describe_status(self, status: int, body: object) -> str:
        return ERROR_NAMES.get(status, "")

    def session(self) -> ColyseusSession:
        return ColyseusSession(self)


class ColyseusSession(Protocol):
    """One session's frames: the join handshake, patches, pings and the leave.

    Per session because PING answers carry no id: they are matched to the pings in the order
    they were sent, so each session keeps its own queue. Runs on the engine's thread.
    """

    def __init__(self, parent: ColyseusProtocol) -> None:
        super().__init__(parent.config)
        self.patch_interval = parent.patch_interval
        self._input_type = parent.options.input_type
        self._ping_every = parent.options.ping_every
        self._pings: deque[int] = deque(maxlen=MAX_PENDING_PINGS)
        #: The last ERROR frame's code during play (the close that follows says the rest).
        self.error_code: int | None = None

    async def open(self, ws: Any) -> Opening:
        while True:  # ends at JOIN_ROOM, ERROR, the close, or the engine's connect timeout
            frame = await ws.recv()
            if not isinstance(frame, bytes) or not frame:
                raise ProtocolError("text_frame")
            code = frame[0] & 0x1F
            if code == JOIN_ROOM:
                token = join_token(frame)
                await ws.send(JOIN_ACK)
                return Opening(True, resume=token or None)
            if code == ERROR:
                err, message = decode_error(frame)
                return Opening(False, reason=error_reason(err), status=err, body={"code": err, "error": message})

    def parse_message(self, raw: str | bytes) -> tuple[str, int, float, int, int]:
        if type(raw) is not bytes or not raw:
            raise ProtocolError("text_frame" if raw else "empty_frame")
        code = raw[0] & 0x1F
        if code == ROOM_STATE_PATCH:
            return _PATCH_RESULT
        if code == PING:
            return (ACK, 0, 0.0, self._pings.popleft(), 0) if self._pings else _OTHER_RESULT
        if code == ERROR:
            self.error_code = decode_error(raw)[0]
        return _OTHER_RESULT

    def input_message(self, seq: int, x: float, y: float) -> bytes:
        if not self._input_type or (self._ping_every and seq % self._ping_every == 0):
            self._pings.append(seq)
            return PING_FRAME
        return room_data(self._input_type, {"seq": seq, "x": round(x, 3), "y": round(y, 3)})

    def leave_message(self) -> bytes:
        return LEAVE

    def welcome_tick_rate(self, raw: str | bytes) -> float | None:
        return None


def _implied(options: dict[str, Any]) -> dict[str, Any]:
    """Colyseus has no /metrics, and its nominal tick rate is the configured patch rate."""
    rate = ColyseusOptions.from_options(options).patch_rate
    return {"scrape_metrics": False, "nominal_tick_rate": round(1.0 / rate, 6)}


ADAPTER = Adapter(
    kind="colyseus",
    make_protocol=ColyseusProtocol.from_settings,
    options={
        "room": Option("string", required=True, help="the room name the server defines"),
        "method": Option("string", "joinOrCreate", allowed=METHODS, help="matchmaking method"),
        "options": Option("table", {}, help="join options sent with every matchmaking request"),
        "auth_path": Option("string", "/auth/anonymous", help="where a token comes from"),
        "seat_reservation_timeout": Option("duration", 15.0, gt=0, help="the room's seatReservationTimeout"),
        "patch_rate": Option("duration", 0.05, gt=0, help="the room's patchRate (nominal tick interval)"),
        "input_type": Option("string", "input", help='ROOM_DATA type of inputs ("" = pings only)'),
        "ping_every": Option("int", 10, ge=0, help="every n-th input is a PING (0 = never)"),
    },
    replay_probe="loadtest.probes.colyseus:ColyseusReplayProbe",
    rate_limit_probe="loadtest.probes.colyseus:ColyseusRateLimitProbe",
    embedded_backend=False,
    implied_settings=_implied,
    probe_extras=("seat_hoarding",),
)
