"""ReconnectPolicy: the delays a dropped player waits, and policies refused by name."""

from __future__ import annotations

import random

import pytest

from loadtest.runtime.backoff import PolicyError, ReconnectPolicy


class TestReconnectPolicy:
    def test_exponential_doubles_from_base_adds_jitter_and_caps(self) -> None:
        policy = ReconnectPolicy(base=1.0, multiplier=2.0, cap=8.0, jitter_min=0.1, jitter_max=0.5)
        rng = random.Random(1)
        for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 8.0)]:
            delay = policy.delay(attempt, rng)
            assert ceiling + 0.1 <= delay <= ceiling + 0.5

    def test_full_jitter_is_uniform_below_the_capped_exponential(self) -> None:
        policy = ReconnectPolicy(kind="full", base=1.0, multiplier=1.5, cap=10.0)
        delays = [policy.delay(3, random.Random(i)) for i in range(200)]
        assert all(0 <= d <= 2.25 for d in delays)
        assert max(delays) - min(delays) > 1.5, "spread over the whole range"

    def test_none_retries_at_once(self) -> None:
        assert ReconnectPolicy(kind="none").delay(5) == 0.0

    @pytest.mark.parametrize(
        ("kwargs", "word"),
        [
            ({"kind": "linear"}, "kind"),
            ({"multiplier": 1.0}, "multiplier"),
            ({"base": 0}, "base"),
            ({"cap": 0.5}, "cap"),
            ({"jitter_min": 1, "jitter_max": 0.5}, "jitter"),
        ],
    )
    def test_impossible_policies_are_refused_by_name(self, kwargs: dict, word: str) -> None:
        with pytest.raises(PolicyError, match=word):
            ReconnectPolicy(**kwargs)
