"""Each worker's load as its samples record it: users Locust asked of it, users it ran, players it
held connected. Merged seconds still tell the workers apart, a recorded 0 stays 0 (zero counts
are not shipped), and a run recorded before load was sampled reads "not recorded"."""

from __future__ import annotations

from loadtest.collectors import generator
from loadtest.collectors.aggregates import Bucket
from loadtest.collectors.generator import GeneratorCollector, GeneratorReducer
from loadtest.results.reduction import Reduction
from tests.unit.workers import T0, quiet_collector


def _second(collectors: dict[str, GeneratorCollector], second: int, loads: dict[str, tuple[int, ...]]) -> Bucket:
    """One merged second: each worker samples ``(sessions, users, users_planned, connected)``."""
    merged = Bucket()
    for worker, (sessions, *load) in loads.items():
        c = collectors[worker]
        if load:
            users, planned, connected = load
            c.sample(second, 1.0, sessions, users=users, users_planned=planned, connected=connected)
        else:
            c.sample(second, 1.0, sessions)  # as the code before load sampling did
        for record in c.agg.drain(worker):
            merged.merge(record.bucket())
    return merged


def _summary(seconds: list[dict[str, tuple[int, ...]]]) -> tuple[dict, GeneratorReducer]:
    collectors = {w: quiet_collector(w) for per in seconds for w in per}
    reduction = Reduction(collectors=[generator.NAME])
    for i, loads in enumerate(seconds):
        reduction.add_second(T0 + i, {generator.NAME: _second(collectors, T0 + i, loads)})
    reducer = reduction.reducer(generator.NAME)
    assert isinstance(reducer, GeneratorReducer)
    return reduction.sections()["generator"], reducer


def test_sessions_per_worker_planned_and_peak_come_from_each_worker_s_samples() -> None:
    gen, reducer = _summary(
        [
            {"a": (3, 3, 5, 2), "b": (2, 2, 5, 0)},
            {"a": (5, 5, 5, 5), "b": (4, 4, 5, 0)},  # b's players never connect: 0, not "unknown"
            {"a": (5, 5, 5, 4), "b": (5, 5, 5, 0)},
        ]
    )
    assert gen["sessions_per_worker_planned"] == 5
    assert gen["sessions_per_worker_peak"] == 5
    a, b = gen["per_worker"]["a"], gen["per_worker"]["b"]
    assert (a["users_planned"], a["users_peak"], a["connected_peak"], a["sessions_peak"]) == (5, 5, 5, 5)
    assert (b["users_planned"], b["users_peak"], b["connected_peak"], b["sessions_peak"]) == (5, 5, 0, 5)
    assert [loads["b"].connected for _, loads in reducer.load] == [0, 0, 0]
    assert reducer.workers["b"][2] == 5, "the lost-worker check still reads each worker's open sessions"


def test_two_samples_of_one_worker_in_one_second_are_its_mean_not_their_sum() -> None:
    """The ship loop can wake late and put two samples into one second."""
    c = quiet_collector("a")
    c.sample(T0, 1.0, 10, users=10, users_planned=10, connected=8)
    c.sample(T0, 1.0, 10, users=10, users_planned=10, connected=10)
    merged = Bucket()
    for record in c.agg.drain("a"):
        merged.merge(record.bucket())
    _, _, loads = GeneratorReducer().fact(T0, merged)
    assert loads["a"] == generator.WorkerLoad(sessions=10, users=10, users_planned=10, connected=9)


def test_a_run_recorded_without_load_samples_reads_not_recorded() -> None:
    gen, _ = _summary([{"a": (4,)}, {"a": (6,)}])
    assert gen["sessions_per_worker_planned"] is None and gen["sessions_per_worker_peak"] is None
    w = gen["per_worker"]["a"]
    assert (w["users_planned"], w["users_peak"], w["connected_peak"], w["sessions_peak"]) == (None, None, None, 6)
