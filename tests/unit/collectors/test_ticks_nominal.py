"""The nominal tick rate: asked of the scenario, the welcome messages, the target's gauge, in that order.

Tick ratios (measured / nominal) are what portable gates compare, so a healthy 20, 30 or 60 Hz
server passes the same scenario; when nobody states the nominal rate there is no ratio and no
degradation verdict, never one against an assumed 60 Hz.
"""

from __future__ import annotations

import pytest

from loadtest.collectors import ticks
from loadtest.collectors.aggregates import Bucket
from loadtest.results.reduction import Reduction


def _tick_seconds(rate_hz: float, seconds: int = 6, *, welcomes: int = 0, announced: float = 0.0) -> list[Bucket]:
    out = []
    for i in range(seconds):
        b = Bucket()
        b.counts[ticks.CONNECTED()] = 4
        b.counts[ticks.TICKS()] = int(4 * rate_hz)
        for _ in range(4):
            b.observe(ticks.RATE(), rate_hz * 100)
        if i == 0 and welcomes:
            b.counts[ticks.WELCOMES()] = welcomes
            b.counts[ticks.NOMINAL_SUM()] = welcomes * announced
        out.append(b)
    return out


def _tick(settings: dict, buckets: list[Bucket]) -> dict:
    reduction = Reduction(settings=settings)
    for second, bucket in enumerate(buckets, start=1000):
        reduction.add_second(second, {ticks.NAME: bucket})
    return reduction.sections()["tick"]


@pytest.mark.parametrize(
    ("settings", "welcomes", "nominal", "source"),
    [
        ({"nominal_tick_rate": 30.0, ticks.TARGET_NOMINAL: 20.0}, 3, 30.0, "scenario"),  # the scenario first
        ({ticks.TARGET_NOMINAL: 20.0}, 3, 25.0, "welcome"),  # then what the server announced
        ({ticks.TARGET_NOMINAL: 30.0}, 0, 30.0, "target_metrics"),  # then its /metrics gauge
    ],
)
def test_the_nominal_rate_comes_from_the_first_source_that_states_it(
    settings: dict, welcomes: int, nominal: float, source: str
) -> None:
    tick = _tick(settings, _tick_seconds(28.5, welcomes=welcomes, announced=25.0))
    assert (tick["nominal_hz"], tick["nominal_source"]) == (nominal, source)
    assert tick["p50_ratio"] == round(tick["p50_hz"] / nominal, 4)
    assert tick["p5_ratio"] == round(tick["p5_hz"] / nominal, 4)
    assert tick["min_ratio"] == round(tick["min_hz"] / nominal, 4)
    assert tick["threshold_hz"] == round(nominal * 0.9, 3)


def test_the_same_ratio_gate_fits_a_healthy_server_of_any_rate_and_catches_a_slow_one() -> None:
    for rate in (20.0, 30.0, 60.0):
        healthy = _tick({"nominal_tick_rate": rate}, _tick_seconds(rate * 0.99))
        assert healthy["p5_ratio"] >= 0.9 and healthy["degradation"] is None, rate
        slow = _tick({"nominal_tick_rate": rate}, _tick_seconds(rate * 0.7))
        assert slow["p5_ratio"] < 0.9 and slow["degradation"] is not None, rate


def test_without_a_nominal_rate_there_is_no_ratio_and_no_verdict_rather_than_60_hz() -> None:
    # 30 Hz would be "degraded" against 60; with nothing stating the rate, nothing is judged.
    tick = _tick({}, _tick_seconds(30.0))
    assert tick["ticks_received"] > 0 and tick["p50_hz"] == pytest.approx(30.0, abs=0.1)
    assert tick["nominal_hz"] is None and tick["nominal_source"] is None and tick["threshold_hz"] is None
    assert (tick["p50_ratio"], tick["p5_ratio"], tick["min_ratio"]) == (None, None, None)
    assert tick["degradation"] is None


def _scraped(end: dict[str, float], start: dict[str, float] | None = None) -> dict:
    return {"scraped": True, "start": start or {}, "end": end, "delta": {}}


def test_the_targets_gauge_is_found_by_its_default_name_or_the_configured_one() -> None:
    gauge = ticks.gauge_nominal
    # The default name, bare or after a prefix; the mean of its samples (one per game server).
    assert gauge(_scraped({"nominal_tick_rate_hz": 30.0}), {}) == 30.0
    two = {'mygame_nominal_tick_rate_hz{server="a"}': 20.0, 'mygame_nominal_tick_rate_hz{server="b"}': 30.0}
    assert gauge(_scraped(two), {}) == 25.0
    # A name that only contains it, or another gauge, is not it.
    assert gauge(_scraped({"nominal_tick_rate_hz_max": 30.0, "tick_rate_hz": 60.0}), {}) is None
    # Configured: ticks.nominal_gauge (settings' nominal_tick_gauge).
    assert gauge(_scraped({"server_hz": 64.0}), {"nominal_tick_gauge": "server_hz"}) == 64.0
    # The last scrape first, the first when the last lacks it; nothing when nothing was scraped.
    assert gauge(_scraped({}, start={"nominal_tick_rate_hz": 20.0}), {}) == 20.0
    assert gauge({"scraped": False, "errors": ["refused"]}, {}) is None
    assert gauge(None, {}) is None
    # A value no tick rate can have is no statement.
    assert gauge(_scraped({"nominal_tick_rate_hz": 0.0}), {}) is None
    assert gauge(_scraped({"nominal_tick_rate_hz": -5.0}), {}) is None


def test_the_gauges_name_is_a_checked_setting() -> None:
    from loadtest.config.settings import NOMINAL_TICK_GAUGE, PlayerSettings, SettingsError

    assert PlayerSettings().nominal_tick_gauge == NOMINAL_TICK_GAUGE == "nominal_tick_rate_hz"
    with pytest.raises(SettingsError, match=r"ticks\.nominal_gauge"):
        PlayerSettings.check({"nominal_tick_gauge": "not a metric name{}"})
