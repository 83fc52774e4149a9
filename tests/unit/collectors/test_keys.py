"""Counter names are written and read by one definition: what a collector counts, a reader gets back."""

from __future__ import annotations

import pytest

from loadtest.collectors import cors, http, ratelimit
from loadtest.collectors.keys import Family


def test_a_name_reads_back_as_the_labels_it_was_written_with() -> None:
    status = Family("status", ("name", "code"), greedy="name")
    assert status("/join", 429) == "status:/join:429"
    assert status.parse("status:/join:429") == ("/join", "429")
    # The greedy label may hold the separator itself; the others are split around it.
    assert status.parse(status("ws:/connect", 0)) == ("ws:/connect", "0")


def test_an_origin_url_survives_inside_a_cors_finding() -> None:
    name = cors.FINDING("missing_allow_origin", "http://localhost:8060 /join")
    assert cors.FINDING.parse(name) == ("missing_allow_origin", "http://localhost:8060 /join")


def test_histogram_names_carry_their_unit_after_the_labels() -> None:
    assert http.LATENCY("/request_token") == "latency:/request_token_us"
    assert http.LATENCY.parse("latency:/request_token_us") == ("/request_token",)
    assert http.LATENCY.parse("latency:/request_token_ms") is None


def test_names_of_other_families_or_arity_do_not_match() -> None:
    assert ratelimit.LIMITED.parse("no_retry_after:/join") is None
    assert ratelimit.PROBE.parse("probe:/join:5") is None  # one label short
    assert Family("opened").parse("opened") == () and Family("opened").parse("opened:x") is None
    with pytest.raises(TypeError):
        ratelimit.PROBE("/join", 5)
    with pytest.raises(ValueError):
        Family("x", ("a",), greedy="b")


def test_totals_and_groupings_sum_every_name_of_the_family() -> None:
    counts = {"429:/join": 3, "429:/request_token": 2, "429:/join:x": 1, "honoured:/join": 7}
    assert ratelimit.LIMITED.by(counts) == {"/join": 3, "/join:x": 1, "/request_token": 2}
    assert ratelimit.LIMITED.total(counts) == 6
    probe = {"probe:/join:5:limited": 2, "probe:/join:10:limited": 3, "probe:/join:10:offered": 9}
    assert ratelimit.PROBE.by(probe, "rate") == {"10": 12, "5": 2}
