"""Collectors: one module per concern, each keeping only per-second mergeable aggregates.

Each module has two halves: the recording class the runtime calls (ticks and generator loop lag
on the WebSocket engine's thread, everything else on the gevent side; the per-process hub owns one
of each), and the :class:`~loadtest.collectors.base.Reducer` that turns its merged seconds into
its summary section and per-second table. Importing this package registers every reducer, in
the order below (each after those it needs).
"""

from loadtest.collectors import cors, generator, http, network, ratelimit, reconnects, replay, sessions, ticks

__all__ = ["cors", "generator", "http", "network", "ratelimit", "reconnects", "replay", "sessions", "ticks"]
