"""The authoritative room simulation, free of I/O.

Each tick moves every player by its last input and then resolves collisions between every pair
of players, in ``substeps`` physics sub-steps. The pairwise pass is what makes a full room
expensive (n² / 2 pairs per sub-step), so the tick loop slows as a lobby fills, the way a real
server-authoritative game does. Kept free of sockets so its cost can be measured on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WORLD = 100.0  # the arena is WORLD x WORLD units
SPEED = 10.0  # units per second at full input
RADIUS = 1.0  # player radius; two players closer than 2 * RADIUS collide
NEAR = 8.0  # "near" distance reported back to each player


@dataclass
class PlayerState:
    name: str
    x: float
    y: float
    dx: float = 0.0
    dy: float = 0.0
    ack: int = 0
    near: int = 0


class InvalidInput(ValueError):
    """A client message that is not a well-formed input; counted and ignored, never fatal."""


def parse_input(message: object) -> tuple[int, float, float]:
    """Validate a decoded ``{"type": "input", "seq", "x", "y"}`` message."""
    if not isinstance(message, dict) or message.get("type") != "input":
        raise InvalidInput("not an input message")
    seq, x, y = message.get("seq"), message.get("x"), message.get("y")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidInput("seq must be a non-negative integer")
    for value in (x, y):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise InvalidInput("x and y must be finite numbers")
    return seq, float(x), float(y)


class RoomSimulation:
    """State of one room: positions, inputs, and the per-tick step."""

    def __init__(self, substeps: int) -> None:
        self.substeps = substeps
        self.players: dict[str, PlayerState] = {}

    def add(self, player_id: str, name: str, seed: int) -> PlayerState:
        # Spread spawn points deterministically so tests and benchmarks repeat.
        angle = (seed * 2.399963) % (2 * math.pi)
        radius = (WORLD / 3) * ((seed % 17) / 17 + 0.1)
        state = PlayerState(name, WORLD / 2 + radius * math.cos(angle), WORLD / 2 + radius * math.sin(angle))
        self.players[player_id] = state
        return state

    def remove(self, player_id: str) -> None:
        self.players.pop(player_id, None)

    def apply_input(self, player_id: str, seq: int, x: float, y: float) -> bool:
        """Steer a player; stale (non-increasing) sequence numbers are ignored, as on a real server."""
        state = self.players.get(player_id)
        if state is None or seq <= state.ack:
            return False
        norm = math.hypot(x, y)
        if norm > 1.0:
            x, y = x / norm, y / norm
        state.dx, state.dy, state.ack = x, y, seq
        return True

    def step(self, dt: float) -> None:
        players = list(self.players.values())
        n = len(players)
        substeps = max(1, self.substeps)
        sub_dt = dt / substeps
        min_d2 = (2 * RADIUS) ** 2
        xs = [p.x for p in players]
        ys = [p.y for p in players]
        for _ in range(substeps):
            for i, p in enumerate(players):
                xs[i] = min(WORLD, max(0.0, xs[i] + p.dx * SPEED * sub_dt))
                ys[i] = min(WORLD, max(0.0, ys[i] + p.dy * SPEED * sub_dt))
            if self.substeps == 0:
                break
            for i in range(n):
                xi, yi = xs[i], ys[i]
                for j in range(i + 1, n):
                    ddx = xs[j] - xi
                    ddy = ys[j] - yi
                    d2 = ddx * ddx + ddy * ddy
                    if d2 < min_d2:
                        # Push the pair apart along the line between them.
                        push = (2 * RADIUS - math.sqrt(d2)) / 2 if d2 > 0 else RADIUS
                        norm = math.sqrt(d2) or 1.0
                        xs[i] -= ddx / norm * push
                        ys[i] -= ddy / norm * push
                        xs[j] += ddx / norm * push
                        ys[j] += ddy / norm * push
        near_d2 = NEAR * NEAR
        near = [0] * n
        for i in range(n):
            xi, yi = xs[i], ys[i]
            for j in range(i + 1, n):
                ddx = xs[j] - xi
                ddy = ys[j] - yi
                if ddx * ddx + ddy * ddy < near_d2:
                    near[i] += 1
                    near[j] += 1
        for i, p in enumerate(players):
            p.x, p.y, p.near = xs[i], ys[i], near[i]
