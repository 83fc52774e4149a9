"""The relay's sans-I/O core: when chunks may be delivered under a link's conditions."""

from __future__ import annotations

import random

from loadtest.runtime.relay import Conditions, FrameCounter, Shaper


def test_clean_link_delivers_at_once() -> None:
    s = Shaper(Conditions())
    assert s.schedule(10.0, 1000) == 10.0
    assert s.slices(100_000) == [100_000]


def test_latency_adds_to_every_chunk() -> None:
    s = Shaper(Conditions(latency_ms=50))
    assert s.schedule(1.0, 10) == 1.05
    assert s.schedule(2.0, 10) == 2.05


def test_bandwidth_serialises_chunks_back_to_back() -> None:
    s = Shaper(Conditions(bandwidth_kb_s=100))  # 100,000 bytes per second
    assert s.schedule(0.0, 50_000) == 0.5
    assert s.schedule(0.0, 50_000) == 1.0  # waits for the link to finish the one before
    assert s.schedule(5.0, 1000) == 5.01  # an idle link starts at once


def test_bandwidth_cuts_chunks_into_slices() -> None:
    s = Shaper(Conditions(bandwidth_kb_s=100))
    pieces = s.slices(10_000)
    assert sum(pieces) == 10_000
    assert max(pieces) == 2000  # 20 ms of the link


def test_jitter_never_reorders_and_stays_in_range() -> None:
    s = Shaper(Conditions(latency_ms=20, jitter_ms=15), random.Random(3))
    times = [s.schedule(i * 0.001, 10) for i in range(500)]
    assert times == sorted(times)
    delays = [t - i * 0.001 for i, t in enumerate(times)]
    assert min(delays) >= 0.005 - 1e-9
    assert max(delays) <= 0.035 + 0.001 * 30  # in-order delivery can hold a chunk behind a late one


def test_a_spike_adds_on_top() -> None:
    s = Shaper(Conditions(latency_ms=10))
    s.extra_ms = 200
    assert abs(s.schedule(0.0, 1) - 0.21) < 1e-9


def _frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


def test_frame_counter_counts_messages_across_any_chunking() -> None:
    stream = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    stream += _frame(b"a" * 10) + _frame(b"b" * 300) + _frame(b"c" * 70_000, opcode=2)
    stream += _frame(b"part", fin=False) + _frame(b"rest", opcode=0) + _frame(b"", opcode=9)  # + a ping
    for size in (1, 3, 7, 64, 1000, len(stream)):
        counter = FrameCounter()
        for i in range(0, len(stream), size):
            counter.feed(stream[i : i + size])
        assert counter.messages == 4, size  # three whole messages and one in two frames; pings are not


def test_frame_counter_ignores_a_stream_that_is_not_a_websocket() -> None:
    counter = FrameCounter()
    counter.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + _frame(b"xx"))
    assert counter.dead and counter.messages == 0
