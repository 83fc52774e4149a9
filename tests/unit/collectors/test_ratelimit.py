"""The rate-limit probe's steps and its estimate of the sustained limit, from the counts it records."""

from __future__ import annotations

from loadtest.collectors.aggregates import Bucket
from loadtest.collectors.ratelimit import PROBE, probe_result


def _steps(*steps: tuple[float, int, int, float | None]) -> Bucket:
    """``(offered rate, accepted, limited, seconds or None when the run's end cut the step short)``."""
    b = Bucket()
    for rate, accepted, limited, seconds in steps:
        b.counts[PROBE("/request_token", f"{rate:g}", "offered")] += accepted + limited
        b.counts[PROBE("/request_token", f"{rate:g}", "accepted")] += accepted
        b.counts[PROBE("/request_token", f"{rate:g}", "limited")] += limited
        if seconds is not None:
            b.counts[PROBE("/request_token", f"{rate:g}", "seconds")] += seconds
    return b


def test_the_limit_is_the_median_accepted_rate_after_the_first_limited_step() -> None:
    probe = probe_result(_steps((2, 6, 0, 3.0), (10, 25, 5, 3.0), (20, 15, 45, 3.0), (40, 15, 105, 3.0)))
    assert probe is not None
    assert probe["limited_from_rate"] == 10 and probe["enforced"]
    assert probe["estimated_limit_per_s"] == 5.0


def test_a_step_cut_short_by_the_run_s_end_has_no_rate_and_no_say_in_the_limit() -> None:
    # The 40/s step had sent 111 when the run ended: 14 accepted, in an unknown number of seconds.
    probe = probe_result(_steps((2, 6, 0, 3.0), (10, 25, 5, 3.0), (20, 15, 45, 3.0), (40, 14, 97, None)))
    assert probe is not None
    assert probe["steps"][-1]["accepted_rate"] is None
    assert probe["estimated_limit_per_s"] == 5.0, "not 14/s from a step read as one second long"
    only_cut = probe_result(_steps((2, 6, 0, 3.0), (10, 14, 97, None)))
    assert only_cut is not None and only_cut["enforced"] and only_cut["estimated_limit_per_s"] is None
