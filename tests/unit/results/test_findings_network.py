"""Findings about players' networks: ghosts, late closes, refused rejoins, slow readers, memory."""

from __future__ import annotations

from loadtest.results.findings import findings


def _fault(connections: int, closed: int, in_fault: int, held: int = 0, outlived: int | None = None) -> dict:
    return {
        "connections": connections,
        "server_closed": closed,
        "closed_in_fault": in_fault,
        "outlived": connections - in_fault if outlived is None else outlived,
        "close_after_p50_s": 2.0 if closed else None,
        "close_after_max_s": 6.5 if closed else None,
        "held_at_end": held,
        "held_max_s": 9.0 if held else None,
    }


def _summary(**network: object) -> dict:
    net = {
        "faults": {},
        "message_rate": {"clean_p5_hz": None, "clean_p50_hz": None, "slow_p50_hz": None, "slow_session_seconds": 0},
        "rejoin": {"attempts": 0, "ok": 0, "refused_full": 0},
    }
    net.update(network)
    return {"network": net, "tick": {"threshold_hz": 54.0}}


def test_a_heartbeat_that_works_is_said_plainly() -> None:
    (sentence,) = findings(_summary(faults={"blackhole": _fault(5, 5, 5)}))
    assert sentence.startswith("The server closed 5 of 5 half-open")


def test_ghosts_replaced_by_their_players_are_not_a_working_heartbeat() -> None:
    (sentence,) = findings(_summary(faults={"freeze": _fault(4, 4, 1)}))
    assert "noticed only 1 of 4 frozen" in sentence and "no heartbeat" in sentence


def test_frozen_players_kept_through_the_freeze() -> None:
    (sentence,) = findings(_summary(faults={"freeze": _fault(4, 0, 0)}))
    assert "kept 4 of 4 frozen" in sentence and "did not notice" in sentence


def test_ghosts_still_held_at_the_end() -> None:
    (sentence,) = findings(_summary(faults={"blackhole": _fault(3, 0, 0, held=3)}))
    assert "never dropped 3 half-open" in sentence


def test_refused_rejoins_and_slow_readers() -> None:
    rates = {"clean_p5_hz": 41.0, "clean_p50_hz": 50.0, "slow_p50_hz": 5.0, "slow_session_seconds": 40}
    out = findings(_summary(rejoin={"attempts": 6, "ok": 2, "refused_full": 4}, message_rate=rates))
    assert any("4 of 6 rejoins" in s and "full" in s for s in out)
    assert any("41.0 messages/s" in s and "slow readers degrade" in s for s in out)
    rates["slow_session_seconds"] = 0  # nobody was slow: a low clean rate is someone else's finding
    assert not any("slow readers" in s for s in findings(_summary(message_rate=rates)))


def test_server_memory_only_beside_a_network_section() -> None:
    metrics = {
        "start": {'gamebackend_game_server_memory_bytes{game_server="0"}': 50e6},
        "end": {'gamebackend_game_server_memory_bytes{game_server="0"}': 80e6},
    }
    assert "went from 50 MB to 80 MB" in " ".join(findings({**_summary(), "target_metrics": metrics}))
    assert findings({"network": None, "target_metrics": metrics}) == []
