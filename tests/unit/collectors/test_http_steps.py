"""HTTP metrics by the flow's step, whatever its path on the backend, with the path beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.adapters.protocol import Protocol, ProtocolConfig
from loadtest.collectors import http
from loadtest.collectors.aggregates import Bucket
from loadtest.config.settings import PlayerSettings, SettingsError
from loadtest.results.reduction import Reduction

OTHER = {"token_path": "/api/v2/auth", "join_path": "/api/v2/match", "connect_path": "/ws/play"}


def _requests(counts: dict[str, tuple[int, int, float]]) -> Bucket:
    """path -> (requests, 429s, latency ms of each)."""
    b = Bucket()
    for path, (n, limited, latency_ms) in counts.items():
        b.counts[http.REQUESTS(path)] += n
        b.counts[http.STATUS(path, 200)] += n - limited
        if limited:
            b.counts[http.STATUS(path, 429)] += limited
            b.counts[http.FAILURES(path)] += limited
        for _ in range(n):
            b.observe(http.LATENCY(path), latency_ms * 1000)
    return b


def _http(settings: dict, *seconds: Bucket) -> dict:
    reduction = Reduction(settings=settings)
    for second, bucket in enumerate(seconds, start=2000):
        reduction.add_second(second, {http.NAME: bucket})
    return reduction.sections()["http"]


def test_requests_are_summarised_by_step_with_this_backends_path_beside_it() -> None:
    settings = PlayerSettings.check({"protocol": OTHER}).model_dump(mode="json")
    out = _http(settings, _requests({"/api/v2/auth": (10, 3, 5.0), "/api/v2/match": (7, 0, 20.0)}))
    assert set(out) == {"token", "join"}
    assert out["token"]["path"] == "/api/v2/auth" and out["join"]["path"] == "/api/v2/match"
    assert (out["token"]["count"], out["token"]["failures"], out["token"]["status"]) == (10, 3, {"200": 7, "429": 3})
    assert out["join"]["p50_ms"] == pytest.approx(20.0, rel=0.01)
    # The reference backend's names are the same steps with their own paths.
    ref = _http({}, _requests({"/request_token": (2, 0, 1.0), "/join": (2, 0, 1.0)}))
    assert {k: v["path"] for k, v in ref.items()} == {"token": "/request_token", "join": "/join"}


def test_an_extra_step_has_its_configured_name_and_an_unnamed_path_keeps_its_path() -> None:
    settings = PlayerSettings.check({"protocol": {**OTHER, "steps": {"profile": "/api/v2/me"}}}).model_dump(mode="json")
    out = _http(settings, _requests({"/api/v2/me": (4, 0, 3.0), "/api/v2/shop": (1, 0, 3.0)}))
    assert out["profile"]["path"] == "/api/v2/me" and out["profile"]["count"] == 4
    assert out["/api/v2/shop"]["path"] == "/api/v2/shop"


def test_every_matchmaking_path_of_colyseus_is_its_one_join_step() -> None:
    settings = PlayerSettings.check({"protocol_kind": "colyseus", "protocol_options": {"room": "arena"}}).model_dump(
        mode="json"
    )
    out = _http(
        settings,
        _requests({"/auth/anonymous": (3, 0, 2.0), "/matchmake/joinOrCreate/arena": (5, 1, 10.0)}),
        _requests({"/matchmake/create/arena": (2, 0, 30.0), "/matchmake/joinById/R1": (1, 0, 30.0)}),
    )
    assert set(out) == {"token", "join"}
    join = out["join"]
    assert join["count"] == 8 and join["failures"] == 1 and join["status"] == {"200": 7, "429": 1}
    assert set(join["path"].split(", ")) == {
        "/matchmake/joinOrCreate/arena",
        "/matchmake/create/arena",
        "/matchmake/joinById/R1",
    }
    assert join["p50_ms"] == pytest.approx(10.0, rel=0.01) and join["p95_ms"] == pytest.approx(30.0, rel=0.01)
    assert join["peak_per_s"] == 5


def test_settings_of_a_run_folder_this_code_cannot_read_still_name_the_reference_steps() -> None:
    odd = {"protocol": {**OTHER, "not_a_key": 1}, "protocol_kind": "gone", "source_addresses": ["192.0.2.1"]}
    out = _http(odd, _requests({"/api/v2/auth": (1, 0, 1.0), "/x": (1, 0, 1.0)}))
    assert set(out) == {"token", "/x"}


def test_extra_step_names_and_paths_are_checked() -> None:
    for steps, why in (
        ({"Profile": "/me"}, "lower-case"),
        ({"join": "/me"}, "not one of token, join, connect"),
        ({"profile": "me"}, "must start with '/'"),
    ):
        with pytest.raises(SettingsError, match="protocol") as caught:
            PlayerSettings.check({"protocol": {"steps": steps}})
        assert why in str(caught.value)
    with pytest.raises(ValueError, match="lower-case"):
        ProtocolConfig(steps={"a.b": "/x"})


def test_a_scenario_names_extra_steps_in_its_protocol_table(tmp_path: Path) -> None:
    from loadtest.config.scenario import load

    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nname = "s"\nduration = "5s"\n[protocol.steps]\nprofile = "/api/v2/me"\n')
    assert load(path).settings.protocol.steps == {"profile": "/api/v2/me"}


@pytest.mark.parametrize(
    ("value", "step", "probed"),
    [
        ("token", "token", "/api/v2/auth"),
        ("join", "join", "/api/v2/match"),
        ("/api/v2/auth", "token", "/api/v2/auth"),  # its own path
        ("/request_token", "token", "/api/v2/auth"),  # the old name of the step: this backend's path
        ("/join", "join", "/api/v2/match"),
    ],
)
def test_the_rate_limit_probe_takes_a_step_name_or_a_path_and_probes_this_backends_path(
    value: str, step: str, probed: str
) -> None:
    settings = PlayerSettings.check({"protocol": OTHER, "probes": {"rate_limit_endpoint": value}})
    protocol = Protocol(settings.protocol)
    assert protocol.resolve_step(value) == step
    assert protocol.step_paths()[step] == probed


@pytest.mark.parametrize("value", ["/api/v2/nothing", "tokn", "connect"])
def test_a_rate_limit_probe_of_no_http_step_is_refused_naming_the_allowed_ones(value: str) -> None:
    with pytest.raises(SettingsError, match="rate_limit_endpoint") as caught:
        PlayerSettings.check({"protocol": OTHER, "probes": {"rate_limit_endpoint": value}})
    assert "'token' or '/api/v2/auth'" in str(caught.value) and "'join' or '/api/v2/match'" in str(caught.value)
