"""Numbers outside what a field can mean, and nesting past a sane depth, are refused at parse time."""

from __future__ import annotations

import json

import pytest

from loadtest.adapters.colyseus import ERROR, decode_error
from loadtest.adapters.protocol import MAX_COUNTER, MAX_DEPTH, TICK, Protocol, ProtocolError, decode_json

P = Protocol()


def tick(number: str = "1", ts: str = "1700000000.5", **extra: object) -> str:
    tail = "".join(f',"{k}":{json.dumps(v)}' for k, v in extra.items())
    return f'{{"type":"tick","tick":{number},"ts":{ts}{tail}}}'


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (tick(number=str(10**400)), "tick_out_of_range"),
        (tick(number=str(MAX_COUNTER + 1)), "tick_out_of_range"),
        (tick(number="-1"), "tick_out_of_range"),
        (tick(ts="NaN"), "ts_out_of_range"),
        (tick(ts="Infinity"), "ts_out_of_range"),
        (tick(ts="-Infinity"), "ts_out_of_range"),
        (tick(ts="1e308"), "ts_out_of_range"),
        (tick(ts="1e999"), "ts_out_of_range"),  # parsed as inf
        (tick(number="1" * 5000), "invalid_json"),  # past Python's int digit limit
        ("[" * 100_000 + "]" * 100_000, "too_deep"),
        (tick(ts='"soon"'), "bad_tick"),
    ],
)
def test_ticks_with_impossible_numbers_are_protocol_errors(raw, reason):
    with pytest.raises(ProtocolError) as caught:
        P.parse_message(raw)
    assert caught.value.reason == reason


def test_a_sane_tick_parses_and_absurd_optional_fields_read_as_absent():
    kind, number, ts, ack, players = P.parse_message(tick(ack=10**30, players=-5))
    assert (kind, number, ts, ack, players) == (TICK, 1, 1700000000.5, 0, 0)
    assert P.parse_message(tick(number=str(MAX_COUNTER), ack=7, players=3))[1:] == (MAX_COUNTER, 1700000000.5, 7, 3)


@pytest.mark.parametrize("rate", ["NaN", "1e999", str(10**400), "-5", "0", "1e9"])
def test_a_welcome_with_an_absurd_tick_rate_announces_none(rate):
    assert P.welcome_tick_rate(f'{{"type":"welcome","tick_rate":{rate}}}') is None
    assert P.welcome_tick_rate('{"type":"welcome","tick_rate":60}') == 60.0


def test_http_replies_nested_past_the_limit_are_refused():
    ok = '{"a":' * (MAX_DEPTH - 1) + "1" + "}" * (MAX_DEPTH - 1)
    assert isinstance(decode_json(ok), dict)
    for raw in ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1), "[" * 100_000 + "]" * 100_000):
        with pytest.raises(ProtocolError) as caught:
            decode_json(raw)
        assert caught.value.reason == "too_deep"


@pytest.mark.parametrize("expires", ["NaN", "Infinity", "1e308", str(10**400), "-1"])
def test_an_absurd_lifetime_reads_as_absent(expires):
    grant = P.parse_token(decode_json(f'{{"token":"t","player_id":"p","expires_in":{expires}}}'))
    assert grant.expires_in is None


@pytest.mark.parametrize("payload", [b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"])
def test_a_colyseus_error_code_that_is_not_an_integer_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError) as caught:
        decode_error(bytes([ERROR]) + payload[:1] + payload[1:][::-1])
    assert caught.value.reason == "bad_number"
