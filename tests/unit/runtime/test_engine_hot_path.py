"""The engine's per-message handler and its garbage-collector policy, without a network."""

from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest

from loadtest.adapters.protocol import Protocol
from loadtest.collectors.aggregates import Bucket
from loadtest.collectors.ticks import INPUT_RTT, LAG, MESSAGES, MISSED, PROTOCOL_ERROR, TICKS, WELCOMES, TickCollector
from loadtest.runtime.engine import _GcFreezer, reader
from loadtest.runtime.inputs import InputClock


def tick(n: int, ts: float, **extra: object) -> str:
    return json.dumps({"type": "tick", "tick": n, "ts": ts, **extra})


def test_the_handler_counts_every_message_and_reports_the_first_tick_once() -> None:
    ticks = TickCollector(estimate_offset=False)
    state = ticks.open()
    firsts: list[int] = []
    on_message, count = reader(ticks, Protocol(), state, lambda: firsts.append(1))
    state.sent_input(4, time.time())
    for raw in ('{"type":"welcome","tick_rate":30}', tick(1, time.time()), "not json", tick(3, time.time(), ack=4)):
        on_message(raw)
    assert count() == 4 and firsts == [1]
    assert (state.received, state.last_tick) == (2, 3)
    merged = Bucket()
    for record in ticks.agg.drain("w"):
        merged.merge(record.bucket())
    assert (merged.counts[MESSAGES()], merged.counts[TICKS()], merged.counts[MISSED()]) == (4, 2, 1)
    assert merged.counts[PROTOCOL_ERROR("invalid_json")] == 1 and merged.counts[WELCOMES()] == 1
    assert merged.hists[INPUT_RTT()].get_total_count() == 1, "the ack of input 4 gave a round trip"
    assert merged.hists[LAG()].get_total_count() == 2


def test_a_handler_bug_in_the_collector_propagates() -> None:
    class Broken(TickCollector):
        def on_tick(self, *args: object) -> None:
            raise RuntimeError("collector bug")

    ticks = Broken(estimate_offset=False)
    on_message, _ = reader(ticks, Protocol(), ticks.open(), lambda: None)
    with pytest.raises(RuntimeError):
        on_message(tick(1, 1000.0))


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_objects_are_frozen_once_a_ramp_pauses_and_given_back_after_churn(unfrozen: None) -> None:
    gc.unfreeze()
    freezer = _GcFreezer(enabled=True)
    freezer.second(live=500, opened=500)  # the first second: nothing known about the ramp yet
    assert freezer.freezes == 0
    freezer.second(live=600, opened=600)  # still ramping
    assert freezer.freezes == 0 and gc.get_freeze_count() == 0
    freezer.second(live=600, opened=600)  # a quiet second: frozen
    assert freezer.freezes == 1 and freezer.frozen == 600 and gc.get_freeze_count() > 0
    freezer.second(live=620, opened=620)
    freezer.second(live=620, opened=620)  # grew by less than GROWTH: no second freeze
    assert freezer.freezes == 1
    freezer.second(live=300, opened=620)  # half of the frozen sessions ended: given back, frozen again
    assert freezer.frozen == 300 and freezer.freezes == 2


def test_small_engines_and_a_disabled_policy_leave_the_collector_alone(unfrozen: None) -> None:
    gc.unfreeze()
    for freezer, live in ((_GcFreezer(enabled=True), 10), (_GcFreezer(enabled=False), 5000)):
        for _ in range(3):
            freezer.second(live=live, opened=live)
        assert freezer.freezes == 0
    assert gc.get_freeze_count() == 0


def test_the_input_walk_stays_on_the_stick() -> None:
    class Ws:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send_soon(self, message: str) -> None:
            self.sent.append(message)

    async def main() -> list[dict[str, float]]:
        clock = InputClock(20.0, lambda exc: None)
        ws, state = Ws(), TickCollector(estimate_offset=False).open()
        clock.add(1, ws, state, Protocol())
        (slot,) = (senders for senders in clock._slots if senders)
        for _ in range(400):
            clock._send(slot)
        clock.stop()
        return [json.loads(m) for m in ws.sent]

    inputs = asyncio.run(main())
    assert [i["seq"] for i in inputs] == list(range(1, 401))
    assert all(-1.0 <= i["x"] <= 1.0 and -1.0 <= i["y"] <= 1.0 for i in inputs)
    assert len({i["x"] for i in inputs}) > 50, "the stick moves"
