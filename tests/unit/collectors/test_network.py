"""The network collector: relay snapshots in, what the server did with frozen and half-open players out."""

from __future__ import annotations

from loadtest.collectors.aggregates import merge_records
from loadtest.collectors.base import Context
from loadtest.collectors.generator import GeneratorReducer
from loadtest.collectors.network import NetworkCollector, NetworkReducer, relay_cost
from loadtest.runtime.relay import RelayStats


def _snapshot(**fields: object) -> dict:
    snap = RelayStats().snapshot()
    snap.update(fields)
    return snap


def _record(kind: str, age: float, fault: float, closed: float | None, ended: bool = False) -> dict:
    return {"kind": kind, "age_s": age, "fault_s": fault, "server_closed_after_s": closed, "ended": ended}


def _summary(collector: NetworkCollector) -> tuple[dict, NetworkReducer]:
    reducer = NetworkReducer()
    ctx = Context(reducers={"network": reducer})
    for second, bucket in sorted(merge_records(collector.agg.drain("w")).get("network", {}).items()):
        reducer.add(second, bucket, ctx)
    return reducer.summarise(ctx)["network"], reducer


def test_nothing_through_the_relay_is_a_null_section() -> None:
    assert _summary(NetworkCollector())[0] is None


def test_closes_holds_and_rejoins() -> None:
    c = NetworkCollector()
    records = [_record("blackhole", 1.0, 1.0, None), _record("freeze", 1.0, 1.0, None)]
    c.sample(
        _snapshot(
            connections=4,
            chunks=10,
            planned_delay_s=0.5,
            actual_delay_s=0.52,
            cpu_s=0.2,
            faults={"blackhole": 1, "freeze": 1},
            records=records,
        ),
        second=100,
    )
    # The blackhole's connection is closed by the server 2.5 s in; the freeze outlives its fault.
    records = [_record("blackhole", 3.0, 2.0, 2.5, ended=True), _record("freeze", 6.0, 2.0, None, ended=True)]
    for second in (101, 102):
        c.sample(
            _snapshot(
                connections=6,
                chunks=20,
                planned_delay_s=1.0,
                actual_delay_s=1.1,
                cpu_s=0.5,
                faults={"blackhole": 1, "freeze": 1},
                records=records,
            ),
            second=second,
        )
    c.agg.bucket(102).counts["rejoin:refused_full"] += 1
    c.agg.bucket(102).counts["rejoin:ok"] += 2
    net, reducer = _summary(c)
    assert net["faults"]["blackhole"]["connections"] == 1
    assert net["faults"]["blackhole"]["server_closed"] == 1  # counted once, though seen in two samples
    assert net["faults"]["blackhole"]["closed_in_fault"] == 0  # 2.5 s in, after its 2 s fault
    assert abs(net["faults"]["blackhole"]["close_after_max_s"] - 2.5) < 0.05
    assert net["faults"]["freeze"]["server_closed"] == 0
    assert net["faults"]["freeze"]["held_at_end"] == 1
    assert net["held_at_end"] == 1
    # Neither was closed while its fault lasted: both outlived it, each counted once.
    assert net["faults"]["blackhole"]["outlived"] == net["faults"]["freeze"]["outlived"] == 1
    assert net["outlived_faults"] == 2
    assert abs(net["held_max_s"] - 6.0) < 0.05
    assert net["rejoin"] == {"attempts": 3, "ok": 2, "refused_full": 1}
    assert net["relay"]["routes_connections"] == 6  # deltas add up to the last reading
    assert net["relay"]["added_delay_mean_ms"] == 50.0
    assert net["relay"]["lateness_mean_ms"] == 5.0
    assert net["relay"]["cpu_s"] == 0.5
    assert relay_cost(reducer.total) == net["relay"]


def test_the_generator_section_carries_the_relay_cost() -> None:
    c = NetworkCollector()
    c.sample(_snapshot(connections=2, chunks=4, planned_delay_s=0.2, actual_delay_s=0.2, cpu_s=0.1), second=5)
    _, network = _summary(c)
    generator = GeneratorReducer()
    summary = generator.summarise(Context(reducers={"network": network, "generator": generator}))
    assert summary["generator"]["relay"]["routes_connections"] == 2
    assert GeneratorReducer().summarise(Context(reducers={}))["generator"]["relay"] is None
