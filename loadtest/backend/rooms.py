"""The matchmaker's view of rooms: codes, capacity, members and seat reservations.

A seat is taken from the moment ``/join`` issues a ticket (a reservation) until the player leaves,
so a burst of joins cannot overfill a room before anyone connects. Reservations lapse with their
ticket.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

#: Room codes are read aloud and typed on phones: no I, L or O to mistake for 1 or 0.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 4
#: An empty room with no pending reservation is kept this long, so a friend given the code can
#: still join it just after its creator left.
EMPTY_GRACE = 5.0


class RoomFull(Exception):
    pass


@dataclass
class RoomRecord:
    code: str
    game_server: int
    capacity: int
    members: dict[str, str] = field(default_factory=dict)  # player id -> display name
    reservations: dict[str, float] = field(default_factory=dict)  # player id -> monotonic expiry
    empty_since: float | None = None

    def occupants(self, now: float) -> set[str]:
        live = {pid for pid, expiry in self.reservations.items() if expiry > now}
        return live | set(self.members)

    def has_space_for(self, player_id: str, now: float) -> bool:
        occupants = self.occupants(now)
        return player_id in occupants or len(occupants) < self.capacity


class RoomRegistry:
    def __init__(self, capacity: int, leak_seats_s: float = 0.0) -> None:
        self.capacity = capacity
        self.rooms: dict[str, RoomRecord] = {}
        #: The ``seat-leak`` defect: a leaving player's seat stays taken this long, under a key of
        #: its connection rather than its player, so not even that player gets it back.
        self.leak_seats_s = leak_seats_s
        self._leaked = 0

    @staticmethod
    def normalise(code: str) -> str:
        return code.strip().upper()

    def create(self, game_server: int) -> RoomRecord:
        for _ in range(1000):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if code not in self.rooms:
                room = RoomRecord(code, game_server, self.capacity, empty_since=time.monotonic())
                self.rooms[code] = room
                return room
        raise RoomFull("no free room code left")

    def get(self, code: str) -> RoomRecord | None:
        return self.rooms.get(self.normalise(code))

    def quick(self, player_id: str) -> RoomRecord | None:
        """The fullest room that still has a seat: fill lobbies before opening new ones."""
        now = time.monotonic()
        best: RoomRecord | None = None
        best_count = -1
        for room in self.rooms.values():
            occupants = room.occupants(now)
            if player_id in occupants:
                return room
            if best_count < len(occupants) < room.capacity:
                best, best_count = room, len(occupants)
        return best

    def reserve(self, room: RoomRecord, player_id: str, expires_at: float) -> None:
        if not room.has_space_for(player_id, time.monotonic()):
            raise RoomFull(room.code)
        room.reservations[player_id] = max(expires_at, room.reservations.get(player_id, 0.0))

    def enter(self, room: RoomRecord, player_id: str, name: str) -> None:
        room.reservations.pop(player_id, None)
        room.members[player_id] = name
        room.empty_since = None

    def leave(self, room: RoomRecord, player_id: str) -> None:
        if self.leak_seats_s and room.members.pop(player_id, None) is not None:
            self._leaked += 1
            room.reservations[f"leaked:{self._leaked}:{player_id}"] = time.monotonic() + self.leak_seats_s
        room.members.pop(player_id, None)
        if not room.members:
            room.empty_since = time.monotonic()

    def sweep(self) -> list[RoomRecord]:
        """Forget lapsed reservations and close rooms left empty; return the closed rooms."""
        now = time.monotonic()
        closed = []
        for code, room in list(self.rooms.items()):
            room.reservations = {pid: exp for pid, exp in room.reservations.items() if exp > now}
            idle = room.empty_since is not None and now - room.empty_since > EMPTY_GRACE
            if not room.members and not room.reservations and idle:
                closed.append(self.rooms.pop(code))
        return closed
