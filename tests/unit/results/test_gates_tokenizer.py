"""The gate tokenizer reads hostile expressions in linear time and quotes them back briefly."""

from __future__ import annotations

import pytest

from loadtest.results.gates import _TOKEN, EXCERPT, MAX_EXPRESSION, GateSyntaxError, parse


@pytest.mark.parametrize(
    "tail",
    ["1" * 200_000 + "x", "1." + "1" * 200_000 + "e", "." + "9" * 200_000 + "/", "1e" + "5" * 200_000 + "q"],
)
def test_a_long_number_that_is_not_one_is_rejected_in_one_pass(tail):
    """No clock here: the quadratic pattern needed 38 s for 20,000 digits, so 200,000 would run
    for about an hour and hit the suite's timeout; one pass over them is instant."""
    match = _TOKEN.match(tail)
    assert match is None


def test_a_huge_expression_is_refused_with_a_short_message():
    expression = "tick.p5_hz >= " + "1" * 20_000 + "x"
    with pytest.raises(GateSyntaxError) as caught:
        parse(expression)
    message = str(caught.value)
    assert f"longer than {MAX_EXPRESSION} characters" in message
    assert len(message) < 400


def test_an_error_quotes_only_an_excerpt():
    expression = "tick.p5_hz >= 5" + "@" * 500
    with pytest.raises(GateSyntaxError) as caught:
        parse(expression)
    message = str(caught.value)
    assert "@" * (EXCERPT + 1) not in message
    assert "characters)" in message and "position 16" in message


def test_a_number_too_large_for_a_float_is_refused():
    with pytest.raises(GateSyntaxError, match="too large"):
        parse("tick.p5_hz >= 1e999")


def test_extra_tokens_are_refused_without_reading_them_all():
    with pytest.raises(GateSyntaxError, match="expected METRIC OP VALUE"):
        parse("a >= 1 " + "b " * 400)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("tick.p5_hz >= 54", 54.0),
        ("http./join.p95_ms < 250", 250.0),
        ("x == -1.5e3", -1500.0),
        ("x != .5", 0.5),
        ("x <= 3.", 3.0),
        ("rate_limit.enforced == true", True),
        ("tick.degradation == null", None),
    ],
)
def test_ordinary_gates_still_parse(expression, value):
    assert parse(expression).value == value
