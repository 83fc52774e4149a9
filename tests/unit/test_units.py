"""The pure parts of the harness, without sockets: policies, parsing, aggregation, tick math."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from loadtest.adapters.protocol import Protocol, ProtocolConfig, ProtocolError
from loadtest.collectors.aggregates import UNITS, Aggregator, Record, merge_records, new_histogram, percentile
from loadtest.collectors.ticks import TickCollector, TickSecond, degradation_onset
from loadtest.config.settings import PlayerSettings, SettingsError, expand_addresses
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


class TestProtocol:
    def test_tick_fields_come_from_configuration(self) -> None:
        p = Protocol(ProtocolConfig(tick_field="n", timestamp_field="t", type_field="k", tick_type="frame"))
        assert p.parse_message('{"k": "frame", "n": 7, "t": 1.5, "ack": 3, "players": 2}') == ("tick", 7, 1.5, 3, 2)
        assert p.parse_message('{"k": "tick", "n": 7, "t": 1.5}')[0] == "other"

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("nope", "invalid_json"),
            ("[1]", "not_an_object"),
            ('{"type": "tick", "tick": "1", "ts": 1}', "bad_tick"),
            ('{"type": "tick", "tick": true, "ts": 1}', "bad_tick"),
            ('{"type": "tick", "tick": 1}', "bad_tick"),
        ],
    )
    def test_malformed_messages_raise_a_countable_reason(self, raw: str, reason: str) -> None:
        with pytest.raises(ProtocolError) as info:
            Protocol().parse_message(raw)
        assert info.value.reason == reason

    @pytest.mark.parametrize(
        ("body", "reason"), [([], "wrong_shape"), ({}, "missing_field"), ({"ticket": 5}, "missing_field")]
    )
    def test_join_replies_of_the_wrong_shape_are_protocol_errors(self, body: object, reason: str) -> None:
        with pytest.raises(ProtocolError) as info:
            Protocol().parse_join(body)
        assert info.value.reason == reason

    def test_input_message_is_valid_json_with_configured_names(self) -> None:
        import json

        p = Protocol(ProtocolConfig(type_field="op", input_type="move", seq_field="n"))
        assert json.loads(p.input_message(4, 0.5, -1)) == {"op": "move", "n": 4, "x": 0.5, "y": -1.0}

    def test_connect_url_escapes_the_ticket(self) -> None:
        from loadtest.adapters.protocol import JoinGrant

        url = Protocol(ProtocolConfig(ticket_param="seat")).connect_url("ws://h:1", JoinGrant("a+b/c", "R", 1))
        assert url == "ws://h:1/connect?seat=a%2Bb%2Fc"


class TestAggregates:
    def test_records_from_two_workers_merge_to_the_sum(self) -> None:
        a, b = Aggregator("x"), Aggregator("x")
        for v in range(1, 101):
            a.observe("lat_us", v, second=10)
            a.count("n", second=10)
        for v in range(101, 201):
            b.observe("lat_us", v, second=10)
            b.count("n", 2, second=11)
        wire = [Record.from_json(r.to_json()) for r in a.drain("w1") + b.drain("w2")]
        merged = merge_records(wire)["x"]
        assert merged[10].counts["n"] == 100
        assert merged[11].counts["n"] == 200
        assert merged[10].hists["lat_us"].get_total_count() == 200
        assert percentile(merged[10].hists["lat_us"], 50) == pytest.approx(100, rel=0.02)

    def test_drain_keeps_the_open_second(self) -> None:
        agg = Aggregator("x")
        agg.count("n", second=5)
        agg.count("n", second=6)
        assert [r.second for r in agg.drain("w", before=6)] == [5]
        assert [r.second for r in agg.drain("w")] == [6]

    def test_histogram_names_must_say_their_unit(self) -> None:
        with pytest.raises(ValueError, match="must end with"):
            Aggregator("x").observe("latency", 1)

    @pytest.mark.parametrize("unit", sorted(UNITS))
    def test_percentile_is_exactly_hdrh_on_random_histograms(self, unit: str) -> None:
        # percentile() counts with numpy; it must give hdrh's own answer to the last unit, for
        # histograms as recorded and as decoded from the wire, at every percentile readers use.
        rng = random.Random(7)
        low, high, _ = UNITS[unit]
        for trial in range(25):
            hist = new_histogram(unit)
            shape = rng.choice(("uniform", "lognormal", "few"))
            for _ in range(rng.choice((1, 2, 10, 500, 3000))):
                if shape == "uniform":
                    value = rng.randint(low, high)
                elif shape == "lognormal":
                    value = int(rng.lognormvariate(8, 2.5))
                else:
                    value = rng.choice((low, 3, 1000, high))
                hist.record_value(min(high, max(low, value)), rng.choice((1, 1, 7)))
            decoded = HdrHistogram.decode(hist.encode())
            for h in (hist, decoded):
                for p in (0, 0.1, 1, 5, 25, 50, 90, 95, 99, 99.9, 99.99, 100, 150):
                    expected = float(h.get_min_value()) if p <= 0 else float(h.get_value_at_percentile(p))
                    assert percentile(h, p) == expected, (unit, trial, shape, p)

    def test_percentile_of_nothing_is_none(self) -> None:
        assert percentile(None, 50) is None
        assert percentile(new_histogram("us"), 50) is None


class TestTickMath:
    def _feed(self, collector: TickCollector, rate: float, seconds: int, *, start_tick: int = 1) -> None:
        state = collector.open()
        tick, t = start_tick, 1000.0
        for second in range(seconds):
            while t < 1000.0 + second + 1:
                collector.on_tick(state, tick, t, 0, t + 0.002, int(t))
                tick += 1
                t += 1 / rate
            collector.roll(int(t) - 1, 1)

    def test_server_rate_is_measured_from_tick_numbers_and_timestamps(self) -> None:
        c = TickCollector(estimate_offset=False)
        self._feed(c, 60.0, 5)
        buckets = merge_records(c.agg.drain("w"))["ticks"]
        measured = [b.hists["tick_rate_centihz"] for b in buckets.values() if "tick_rate_centihz" in b.hists]
        rates = [percentile(h, 50) / 100 for h in measured]
        assert len(rates) == 4, "the session's first (partial) second yields no rate"
        assert all(abs(r - 60.0) < 0.1 for r in rates)

    def test_a_session_joining_late_in_a_second_is_not_read_as_a_slow_server(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        c.on_tick(s, 1, 100.98, 0, 100.99, 100)  # joined at the end of second 100: one tick
        c.roll(100, 1)
        for i in range(2, 62):
            t = 100.98 + (i - 1) / 60
            c.on_tick(s, i, t, 0, t + 0.001, int(t))
        c.roll(101, 1)
        buckets = merge_records(c.agg.drain("w"))["ticks"]
        assert "tick_rate_centihz" not in buckets[100].hists
        assert percentile(buckets[101].hists["tick_rate_centihz"], 0) / 100 == pytest.approx(60, abs=0.1)

    def test_a_stalled_server_reads_as_zero_after_ticking(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        for i in range(1, 61):
            c.on_tick(s, i, 100 + i / 61, 0, 100 + i / 61, 100)
        c.roll(100, 1)
        c.roll(101, 1)  # a whole second without a tick
        buckets = merge_records(c.agg.drain("w"))["ticks"]
        assert percentile(buckets[101].hists["tick_rate_centihz"], 50) <= 1

    def test_gaps_in_tick_numbers_are_missed_ticks(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        for tick in (1, 2, 5, 6, 10):
            c.on_tick(s, tick, 100 + tick / 60, 0, 100 + tick / 60, 100)
        assert c.agg.bucket(100).counts["missed"] == 2 + 3

    def test_input_round_trip_is_matched_by_ack(self) -> None:
        c = TickCollector(estimate_offset=False)
        s = c.open()
        s.sent_input(1, 50.0)
        s.sent_input(2, 50.05)
        c.on_tick(s, 1, 50.1, 2, 50.12, 50)
        rtt = c.agg.bucket(50).hists["input_rtt_us"]
        assert rtt.get_total_count() == 1
        assert percentile(rtt, 50) == pytest.approx(70_000, rel=0.02)

    def test_onset_needs_three_seconds_below_threshold_and_ignores_saturated_ones(self) -> None:
        rows = [TickSecond(s, 60, p5, 50, s * 10, 0, 1.0) for s, p5 in enumerate([60, 50, 50, 60, 50, 50, 50, 40])]
        onset = degradation_onset(rows, 54)
        assert onset is not None and onset.second == 4 and onset.players == 40
        assert degradation_onset(rows, 54, saturated={5}) is None


class TestSettings:
    def test_unknown_and_impossible_settings_name_the_key(self) -> None:
        with pytest.raises(SettingsError, match="unknown player setting"):
            PlayerSettings.from_dict({"sesion_length": 3})
        with pytest.raises(SettingsError, match=r"player\.input_rate"):
            PlayerSettings(input_rate=0)
        with pytest.raises(SettingsError, match="not a loopback"):
            PlayerSettings(source_addresses=("192.0.2.1",))

    def test_source_address_ranges_expand(self) -> None:
        assert expand_addresses("127.0.0.2-127.0.0.4, 127.0.1.1") == (
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.1.1",
        )

    def test_settings_round_trip_through_json(self) -> None:
        import json

        s = PlayerSettings(session_length=5, reconnect=ReconnectPolicy(kind="full"), source_addresses=("127.0.0.2",))
        assert PlayerSettings.from_dict(json.loads(s.to_json())) == s
