"""How many worker processes a peak of players needs: sessions per worker, up to the cores (the
planning rule ``load.workers = "auto"`` is to use; the scenario key itself is not wired yet)."""

from __future__ import annotations

from loadtest.config.scenario import SESSIONS_PER_WORKER, workers_for


def test_workers_for_counts_sessions_per_worker_up_to_the_cores() -> None:
    assert workers_for(1, cores=8) == 1
    assert workers_for(SESSIONS_PER_WORKER, cores=8) == 1
    assert workers_for(SESSIONS_PER_WORKER + 1, cores=8) == 2
    assert workers_for(5 * SESSIONS_PER_WORKER, cores=2) == 2
