"""Findings: what the numbers mean, in sentences a producer can read.

Each rule looks at one part of the summary and says something only when there is something to say:
a replayable ticket, a tick rate that sank, players that never came back, a missing rate limit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

KIND_WORDS = {
    "ticket_reuse": "tickets can be replayed",
    "ticket_race": "one ticket can open several sessions at once (check-then-consume race)",
    "ticket_expired": "expired tickets are accepted",
    "ticket_forged": "forged tickets are accepted",
    "jwt_alg_none": "unsigned tokens (alg: none) are accepted",
    "jwt_bad_signature": "tokens with a bad signature are accepted",
    "jwt_expired": "expired tokens are accepted",
    "jwt_wrong_audience": "tokens for another audience are accepted",
    "reconnect_token_reuse": "a used reconnection token resumes a session again",
}


#: When used tickets are accepted again, concurrent first uses winning is that same defect.
RACE_BY_REUSE = (
    "one ticket can open several sessions at once, because used tickets are never refused (reuse, not a race)"
)


def _replay(s: dict[str, Any]) -> list[str]:
    out = []
    by_kind = s.get("replay", {}).get("by_kind", {})
    reused = bool(by_kind.get("ticket_reuse", {}).get("accepted"))
    for kind, v in by_kind.items():
        if v.get("accepted"):
            # A race is told from reuse: sessions opened one after another with one ticket (reuse)
            # make concurrent first uses win too; only without reuse is it a check-then-consume race.
            words = RACE_BY_REUSE if kind == "ticket_race" and reused else KIND_WORDS.get(kind, kind)
            out.append(f"{words[0].upper()}{words[1:]}: {v['accepted']} of {v['attempts']} attempts accepted.")
    return out


def _ticks(s: dict[str, Any]) -> list[str]:
    tick = s.get("tick", {})
    out = []
    onset = tick.get("degradation")
    if onset:
        when = datetime.fromtimestamp(onset["onset_second"], UTC).strftime("%H:%M:%S UTC")
        out.append(
            f"Tick rate fell below {tick['threshold_hz']:g} Hz at {onset['players']} players "
            f"(p5 {onset['p5_hz']:.1f} Hz from {when}, nominal {tick['nominal_hz']:g} Hz)."
        )
    if tick.get("missed_ticks"):
        out.append(f"{tick['missed_ticks']} ticks never arrived (gaps in the server's tick numbers).")
    return out


def _reconnect(s: dict[str, Any]) -> list[str]:
    rc = s.get("reconnect", {})
    out = []
    dropped, recovered = rc.get("dropped", 0), rc.get("recovered", 0)
    if dropped and recovered < dropped:
        out.append(f"{dropped - recovered} of {dropped} dropped players did not get back into a game.")
    if rc.get("gave_up"):
        out.append(f"{rc['gave_up']} players gave up reconnecting after their last attempt.")
    if dropped and recovered == dropped and rc.get("recovery_p95_s") is not None:
        out.append(
            f"All {dropped} dropped players recovered (p95 {rc['recovery_p95_s']:.1f} s, "
            f"max {rc['recovery_max_s']:.1f} s)."
        )
    if rc.get("resumed") or rc.get("resume_refused"):
        out.append(
            f"{rc.get('resumed', 0)} sessions resumed with their reconnection token; "
            f"{rc.get('resume_refused', 0)} tokens were refused and those players matchmade again."
        )
    if rc.get("storms_failed"):
        out.append(f"{rc['storms_failed']} scheduled storm(s) could not be set off (see the run log).")
    return out


def _rate_limits(s: dict[str, Any]) -> list[str]:
    rl = s.get("rate_limit", {})
    out = []
    probe = rl.get("probe")
    if probe is not None:
        if probe["enforced"]:
            out.append(
                f"{probe['endpoint']} is rate limited from about {probe['estimated_limit_per_s']:g} requests/s "
                f"per address (429s began at an offered {probe['limited_from_rate']:g}/s)."
            )
        else:
            top = max(step["offered_rate"] for step in probe["steps"])
            out.append(f"{probe['endpoint']} is not rate limited: every request up to {top:g}/s was accepted.")
    met = rl.get("responses_429", {})
    if met:
        total = sum(met.values())
        where = ", ".join(f"{k} {v}" for k, v in met.items())
        out.append(f"Players met {total} rate-limit responses (429) during the run ({where}).")
    if rl.get("retry_after_not_honoured"):
        out.append(f"Retry-After was not honoured {rl['retry_after_not_honoured']} times.")
    missing = rl.get("without_retry_after", {})
    if missing:
        out.append(f"{sum(missing.values())} rate-limit responses carried no Retry-After header.")
    return out


def _seat_hoarding(s: dict[str, Any]) -> list[str]:
    hoard = s.get("rate_limit", {}).get("seat_hoarding")
    if not hoard or not hoard.get("asked"):
        return []
    if hoard["stopped_by"] is None and hoard["granted"] >= hoard["asked"]:
        return [
            f"Seat hoarding: one token took all {hoard['granted']} seat reservations it asked for "
            f"({hoard['rooms']} room(s)) on {hoard['endpoint']}; nothing limits how many seats a client holds."
        ]
    return [
        f"Seat hoarding: one token got {hoard['granted']} of {hoard['asked']} seat reservations "
        f"before {hoard['stopped_by'] or 'the time limit'} stopped it."
    ]


def _sessions(s: dict[str, Any]) -> list[str]:
    ws = s.get("ws", {})
    out = []
    storms = s.get("reconnect", {}).get("storms", 0)
    if ws.get("unexpected_disconnects") and not storms:
        out.append(f"{ws['unexpected_disconnects']} sessions were lost without any storm being scheduled.")
    # Timed-out connects have a sentence of their own (_connect_timeouts).
    failed = {k: v for k, v in ws.get("connect_failed", {}).items() if k != "timeout"}
    if failed:
        out.append("WebSocket connects failed: " + ", ".join(f"{k} x{v}" for k, v in failed.items()) + ".")
    errors = s.get("protocol_errors", {})
    count = sum(errors.get("http", {}).values()) + sum(errors.get("ws", {}).values())
    if count:
        out.append(f"{count} replies or messages broke the protocol (see protocol_errors).")
    return out


#: Protocol-error reasons of an HTTP step that mean "no answer in time".
UNANSWERED = ("timeout", "deadline_exceeded")


def _unanswered(s: dict[str, Any]) -> list[str]:
    """Requests that got no answer (a timeout, a connection that failed: status 0), per step, and
    when the target stopped answering altogether."""
    errors = s.get("protocol_errors", {}).get("http", {})
    out = []
    for step, stats in sorted((s.get("http") or {}).items()):
        silent = int((stats.get("status") or {}).get("0", 0))
        # Protocol errors are counted per path; a step may have several (", "-joined).
        paths = str(stats.get("path") or step).split(", ")
        timed_out = sum(int(errors.get(f"{p}:{reason}", 0)) for p in paths for reason in UNANSWERED)
        if silent or timed_out:
            parts = [f"{silent} got no answer (status 0)"] if silent else []
            parts += [f"{timed_out} timed out"] if timed_out else []
            where = step if paths == [step] else f"{step} ({', '.join(paths)})"
            out.append(f"{where}: {' and '.join(parts)} of {stats.get('count', 0)} requests.")
    silent_from = (s.get("integrity") or {}).get("target_silent_from_s")
    if silent_from is not None:
        out.append(f"The target stopped answering at {silent_from} s: no request got an answer after that.")
    scrape = s.get("target_metrics") or {}
    if scrape.get("failing_from_s") is not None:
        out.append(
            f"The target's /metrics stopped answering at {scrape['failing_from_s']} s "
            f"({scrape.get('failed_scrapes', 0)} scrapes failed): its own counters after that are missing."
        )
    return out


# -- WebSocket connects that timed out (issue 13): a target that takes the connection but never
# answers the upgrade leaves the users running and no player connected.


def _connect_timeouts(s: dict[str, Any]) -> list[str]:
    ws = s.get("ws", {})
    timed_out = int((ws.get("connect_failed") or {}).get("timeout", 0))
    if not timed_out:
        return []
    attempts = int(ws.get("sessions_opened", 0)) + int(ws.get("connect_failed_total", timed_out))
    players = (s.get("integrity") or {}).get("peak_connected", s.get("tick", {}).get("peak_players"))
    connected = f"; at most {players} players were ever connected at once" if players is not None else ""
    return [
        f"{timed_out} of {attempts} WebSocket connects timed out: the target did not complete the upgrade "
        f"within player.connect_timeout{connected}."
    ]


def _cors(s: dict[str, Any]) -> list[str]:
    cors = s.get("cors") or {}
    return [
        f"CORS: {f['finding'].replace('_', ' ')} for {f['origin']} on {f['path']}." for f in cors.get("findings", [])
    ]


def _generator(s: dict[str, Any]) -> list[str]:
    gen = s.get("generator", {})
    if gen.get("seconds_saturated"):
        return [
            f"The load generator was saturated for {gen['seconds_saturated']} s; those seconds are not "
            "counted as server degradation. Add workers for trustworthy numbers."
        ]
    return []


def _tls(s: dict[str, Any]) -> list[str]:
    if s.get("run", {}).get("tls_verification") == "off (insecure)":
        return ["TLS certificates were not verified (insecure): this run says nothing about TLS."]
    return []


#: How far the target's own tick gauge and the players' measured rate may differ before it is a
#: finding: a tenth of the nominal rate, and never less than this many hertz.
SERVER_CLIENT_GAP_HZ = 3.0


def server_client_gap(s: dict[str, Any]) -> tuple[float, float, int] | None:
    """(server Hz, players' Hz, scrapes) when the target's tick gauge and the players' p50 differ
    persistently: at most scrapes in one direction, with the median gap over the tolerance."""
    gauge = [p["hz"] for p in (s.get("target_metrics") or {}).get("tick_gauge") or []]
    tick = s.get("tick") or {}
    client, nominal = tick.get("p50_hz"), tick.get("nominal_hz") or 0.0
    if len(gauge) < 2 or client is None:
        return None
    tolerance = max(SERVER_CLIENT_GAP_HZ, 0.1 * nominal)
    gaps = sorted(g - client for g in gauge)
    median = gaps[len(gaps) // 2] if len(gaps) % 2 else (gaps[len(gaps) // 2 - 1] + gaps[len(gaps) // 2]) / 2
    same_side = sum(1 for g in gaps if abs(g) > tolerance and (g > 0) == (median > 0))
    if abs(median) <= tolerance or same_side * 2 <= len(gaps):
        return None
    server = sorted(gauge)[len(gauge) // 2]
    return server, float(client), len(gauge)


def _server_vs_client(s: dict[str, Any]) -> list[str]:
    gap = server_client_gap(s)
    if gap is None:
        return []
    server, client, scrapes = gap
    if server > client:
        return [
            f"The server reports ticking at {server:.1f} Hz (its own tick-rate gauge, {scrapes} scrapes) while "
            f"players measured {client:.1f} Hz (p50): the server's metric hides what players get."
        ]
    return [
        f"Players measured {client:.1f} Hz (p50) while the server's own tick-rate gauge says {server:.1f} Hz "
        f"({scrapes} scrapes): the gauge is wrong, or the players are not timing what the server sends."
    ]


#: The target's resident-memory gauges, by the names the reference backend and Prometheus clients use.
MEMORY_GAUGES = ("gamebackend_game_server_memory_bytes", "process_resident_memory_bytes")


def _server_memory(s: dict[str, Any]) -> list[str]:
    """The target's memory at the start and end of a run with bad networks, when it is scraped."""
    metrics = s.get("target_metrics") or {}
    start, end = metrics.get("start") or {}, metrics.get("end") or {}

    def total(samples: dict[str, float]) -> float:
        return sum(v for k, v in samples.items() if k.split("{", 1)[0] in MEMORY_GAUGES)

    before, after = total(start), total(end)
    if not before or not after:
        return []
    return [f"The server's memory went from {before / 1e6:.0f} MB to {after / 1e6:.0f} MB over the run."]


def _network(s: dict[str, Any]) -> list[str]:
    """What the server did with frozen, half-open and reset players (the relay's evidence)."""
    net = s.get("network") or {}
    out = []
    for kind, f in sorted((net.get("faults") or {}).items()):
        if kind not in ("freeze", "blackhole") or not f.get("connections"):
            continue
        what = "frozen" if kind == "freeze" else "half-open"
        late = f.get("server_closed", 0) - f.get("closed_in_fault", 0)
        if f.get("held_at_end"):
            out.append(
                f"The server never dropped {f['held_at_end']} {what} connection(s) "
                f"(kept for {f['held_max_s']:.1f} s and counting): no heartbeat detects dead players."
            )
        elif late > 0:
            out.append(
                f"The server noticed only {f.get('closed_in_fault', 0)} of {f['connections']} {what} connection(s) "
                f"while they were dead; {late} went only when their players came back and replaced them "
                f"(kept up to {f['close_after_max_s']:.1f} s): no heartbeat detects dead players."
            )
        elif f.get("outlived"):
            out.append(
                f"The server kept {f['outlived']} of {f['connections']} {what} connection(s) open through their "
                "whole fault: it did not notice them (no heartbeat, or one slower than the fault)."
            )
        elif f.get("server_closed"):
            out.append(
                f"The server closed {f['server_closed']} of {f['connections']} {what} connection(s) "
                f"after {f['close_after_p50_s']:.1f} s (max {f['close_after_max_s']:.1f} s)."
            )
    rates, tick = net.get("message_rate") or {}, s.get("tick") or {}
    threshold, clean = tick.get("threshold_hz"), rates.get("clean_p5_hz")
    if rates.get("slow_session_seconds") and threshold and clean is not None and clean < threshold:
        out.append(
            f"While players were on slow links, players on clean links got only {clean:.1f} messages/s (p5; "
            f"threshold {threshold:g} Hz): slow readers degrade the room for everyone."
        )
    if net:
        out += _server_memory(s)  # beside the faults it may show the cost of
    rejoin = net.get("rejoin") or {}
    if rejoin.get("refused_full"):
        out.append(
            f"{rejoin['refused_full']} of {rejoin['attempts']} rejoins to the player's own room were refused as "
            "full: a dropped player's seat is still held."
        )
    return out


RULES: list[Callable[[dict[str, Any]], list[str]]] = [
    _replay,
    _ticks,
    _server_vs_client,
    _reconnect,
    _rate_limits,
    _seat_hoarding,
    _sessions,
    _unanswered,
    _connect_timeouts,
    _cors,
    _generator,
    _tls,
    _network,
]


def findings(summary: dict[str, Any]) -> list[str]:
    return [sentence for rule in RULES for sentence in rule(summary)]
