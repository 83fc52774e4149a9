"""The typed fast path of ``Protocol.parse_message`` answers exactly as the careful path does.

The fast path (msgspec, checks in C) exists for speed only (docs/performance.md): whatever it
accepts must read the same as :meth:`Protocol.parse_carefully`, and whatever it refuses must go
there, so every reason and every "absent" reading stays the careful path's.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.adapters.protocol import MAX_COUNTER, Protocol, ProtocolConfig, ProtocolError

P = Protocol()
RENAMED = Protocol(ProtocolConfig(tick_field="n", timestamp_field="t", type_field="k", tick_type="frame"))
SHARED = Protocol(ProtocolConfig(ack_field="tick"))  # two fields under one name


def answer(protocol: Protocol, parse: str, raw: str | bytes) -> object:
    try:
        return getattr(protocol, parse)(raw)
    except ProtocolError as exc:
        return ("error", exc.reason)


def same(protocol: Protocol, raw: str | bytes) -> None:
    fast, careful = answer(protocol, "parse_message", raw), answer(protocol, "parse_carefully", raw)
    assert fast == careful, raw
    if fast[0] == "tick":
        assert [type(v) for v in fast] == [type(v) for v in careful], raw


EDGES = [
    '{"type":"tick","tick":1,"ts":1700000000.5}',
    '{"type":"tick","tick":1,"ts":1700000000}',  # an integer timestamp reads as a float
    '{"type":"tick","tick":1,"tick":2,"ts":5}',  # a repeated key: the last one counts
    '{"type":"tick","tick":3,"ts":5,"type":"welcome"}',
    '{"type":"tick","tick":1.0,"ts":5}',
    '{"type":"tick","tick":true,"ts":5}',
    '{"type":"tick","tick":1,"ts":true}',
    '{"type":"tick","tick":1,"ts":"5"}',
    '{"type":"tick","tick":1,"ts":5,"ack":true,"players":1.5}',
    '{"type":"tick","tick":1,"ts":5,"ack":-1,"players":null}',
    f'{{"type":"tick","tick":{MAX_COUNTER},"ts":5,"ack":{MAX_COUNTER + 1}}}',
    f'{{"type":"tick","tick":{MAX_COUNTER + 1},"ts":5}}',
    f'{{"type":"tick","tick":{10**400},"ts":5}}',
    '{"type":"tick","tick":1,"ts":1e11}',
    '{"type":"tick","tick":1,"ts":-1e11}',
    '{"type":"tick","tick":1,"ts":100000000000.001}',
    '{"type":"tick","tick":1,"ts":NaN}',
    '{"type":"tick","tick":1,"ts":1e999}',
    '{"type":5,"tick":1,"ts":5}',
    '{"tick":1,"ts":5}',
    '{"type":"welcome","tick_rate":60}',
    '{"type":"tick","tick":1,"ts":5,"x":' + "[" * 3000 + "]" * 3000 + "}",
    "[" * 100_000 + "]" * 100_000,
    '{"type":"tick","tick":1,"ts":5,"x":"\\ud800"}',
    '{"type":"tick","tick":1,"ts":5} trailing',
    "[1]",
    "nope",
    "",
    b'{"type":"tick","tick":1,"ts":5}',
    b'{"type":"tick","tick":1,"ts":5,"x":"\xff"}',
]


@pytest.mark.parametrize("raw", EDGES)
def test_the_fast_path_answers_as_the_careful_one(raw: str | bytes) -> None:
    same(P, raw)
    same(SHARED, raw)


def test_renamed_fields_take_the_fast_path_too() -> None:
    for raw in ('{"k":"frame","n":7,"t":1.5,"ack":3}', '{"k":"tick","n":7,"t":1.5}', '{"k":"frame","n":-7,"t":1}'):
        same(RENAMED, raw)
    assert RENAMED.parse_message('{"k":"frame","n":7,"t":1.5,"ack":3,"players":2}') == ("tick", 7, 1.5, 3, 2)


NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.sampled_from([MAX_COUNTER, MAX_COUNTER + 1, 1e11, -1e11, 0, -1]),
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(["tick", "welcome", "Tick", 7]),
    fields=st.dictionaries(st.sampled_from(["tick", "ts", "ack", "players", "extra"]), NUMBERS, max_size=5),
)
def test_random_ticks_read_the_same_both_ways(kind: object, fields: dict[str, object]) -> None:
    raw = json.dumps({"type": kind, **fields})
    same(P, raw)
    same(P, raw.encode())
