"""Did the run do what its scenario planned? The part of the verdict that no gate can give.

A gate judges the numbers a run produced; it cannot see that the run never reached its load, lost
a worker half-way, never set off its storm, skipped a probe, hammered a target that had stopped
answering, or measured a saturated load generator. Each of those makes every number suspect, so
such a run is **not carried out** (exit 3) whatever its gates say, and it says why in plain words.
What was planned comes from the scenario and the settings the run recorded; what happened comes
from the reducers of the one pass over its data. docs/summary.md §13 lists the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtest.collectors import generator, http, ticks
from loadtest.collectors.base import Section
from loadtest.results.reduction import Reduction

#: The share of the planned players that must have been connected at once.
LOAD_REACHED = 0.9
#: A worker whose last sample is older than this many seconds before the run's last is lost.
WORKER_LOST_AFTER_S = 5
#: Saturated seconds beyond this share of the run make its numbers the generator's own.
SATURATED_SHARE = 0.1
#: Seconds at the end of a run with requests but not one answer: the target stopped answering.
SILENT_TAIL_S = 5
#: A scheduled storm is matched to a recorded one this many seconds either side of its time.
STORM_SLACK_S = 5


class WorkerReached(Section):
    """One worker's load in a stage: the users Locust asked of it, ran, and its players."""

    users_planned: int | None
    users_reached: int | None
    peak_connected: int | None


class StageReached(Section):
    stage: int
    users: int
    peak_connected: int
    #: The most Locust users running at once (all workers); None when the run did not record it.
    users_reached: int | None = None
    per_worker: dict[str, WorkerReached] = {}


class LostWorker(Section):
    worker: str
    last_seen_s: int
    sessions: int
    #: Its Locust users at its last sample (None: not recorded by the code that made the run).
    users: int | None = None


class StormCheck(Section):
    at_s: float
    side: str
    carried_out: bool
    dropped: int | None
    why: str | None
    #: How it was set off (chaos, http, command) and, for http and command triggers, the seconds
    #: after its start in which the players' drops were counted as its effect.
    trigger: str = "chaos"
    window_s: float | None = None


class ProbeCheck(Section):
    probe: str
    checked: bool
    attempts: int
    why: str | None


class IntegritySection(Section):
    carried_out: bool
    reasons: list[str]
    notes: list[str]
    planned_users: int | None
    peak_connected: int
    stages: list[StageReached]
    workers_expected: int | None
    workers_seen: int
    workers_lost: list[LostWorker]
    storms: list[StormCheck]
    probes: list[ProbeCheck]
    seconds_saturated: int
    target_silent_from_s: int | None
    interrupted: bool
    locust_exit_code: int | None


def check(
    reduction: Reduction,
    summary: Mapping[str, Any],
    settings: Mapping[str, Any],
    scenario: Any | None,
    *,
    interrupted: bool = False,
    locust_exit_code: int | None = None,
    ended: bool = True,
) -> dict[str, Any]:
    """The ``integrity`` section: what was planned against what happened, and the reasons (in
    words) a run was not carried out. ``ended=False`` judges a run still going (the live view):
    a probe begun but not finished is then in progress, not undone."""
    reasons: list[str] = []
    notes: list[str] = []
    t0 = reduction.first_second
    if interrupted:
        reasons.append("the run was interrupted before its planned end")
    if locust_exit_code not in (None, 0, 1):
        reasons.append(f"Locust ended with exit code {locust_exit_code} (see locust.log)")
    if t0 is None:
        reasons.append("no data was recorded: no player ran")

    planned, stages = _load(reduction, scenario, summary, reasons)
    expected, seen, lost = _workers(reduction, scenario, reasons)
    storms = _storms(summary, settings, reasons, notes, reduction)
    probes = _probes(summary, settings, reasons, notes, ended=ended)
    saturated = int(summary["generator"]["seconds_saturated"])
    seconds = max(1, (reduction.last_second or 0) - (t0 or 0) + 1)
    if saturated and saturated > SATURATED_SHARE * seconds:
        reasons.append(
            f"the load generator was saturated for {saturated} of {seconds} s: those numbers measure "
            "the generator, not the target (fewer users per worker, or more workers)"
        )
    elif saturated:
        notes.append(f"the load generator was saturated for {saturated} s; tick verdicts skip those seconds")
    silent = _silent_from(reduction)
    if silent is not None:
        reasons.append(f"the target stopped answering at {silent} s: every request after that timed out or failed")
    if summary["tick"].get("ticks_received") and not summary["tick"].get("nominal_hz"):
        # No gate on a tick ratio can pass, and no degradation is looked for: say so, never assume 60.
        notes.append(
            "tick verdicts not checked: nominal tick rate unknown (no ticks.nominal_hz, no welcome "
            "message announcing it, no tick-rate gauge on the target's /metrics)"
        )
    engine_errors = summary["tick"].get("engine_errors")
    if engine_errors:
        notes.append(f"the harness itself failed {engine_errors} time(s) on its engine thread (see locust.log)")
    scrape = summary.get("target_metrics")
    if isinstance(scrape, dict) and scrape.get("scraped") is False:
        notes.append("the target's /metrics could not be scraped: its own counters are not compared")
    elif isinstance(scrape, dict) and scrape.get("failing_from_s") is not None:
        notes.append(f"the target's /metrics stopped answering at {scrape['failing_from_s']} s")
    return {
        "carried_out": not reasons,
        "reasons": reasons,
        "notes": notes,
        "planned_users": planned,
        "peak_connected": int(summary["tick"]["peak_players"]),
        "stages": stages,
        "workers_expected": expected,
        "workers_seen": seen,
        "workers_lost": lost,
        "storms": storms,
        "probes": probes,
        "seconds_saturated": saturated,
        "target_silent_from_s": silent,
        "interrupted": interrupted,
        "locust_exit_code": locust_exit_code,
    }


def _load(
    reduction: Reduction, scenario: Any, summary: Mapping[str, Any], reasons: list[str]
) -> tuple[int | None, list[dict[str, Any]]]:
    """Per stage (a run without stages is one): users planned, Locust users reached, players
    (connected sessions) reached, and the same per worker. Players short of the plan is a reason,
    worded by where the load stopped: users Locust never ran, or users that never got connected."""
    if scenario is None:
        return None, []
    rows: Sequence[ticks.TickSecond] = getattr(reduction.reducer(ticks.NAME), "seconds", [])
    gen = reduction.reducer(generator.NAME)
    load: Sequence[tuple[int, dict[str, generator.WorkerLoad]]] = getattr(gen, "load", [])
    t0 = reduction.first_second or 0
    stages = list(getattr(scenario, "stages", ()) or ())
    staged = bool(stages)
    if not staged:
        stages = [_WholeRun(float(getattr(scenario, "duration", 0) or 0), int(scenario.users))]
    out, start = [], 0.0
    for i, stage in enumerate(stages):
        # The last stage, or a run without stages, runs on to the last second recorded.
        end = float("inf") if i == len(stages) - 1 else start + float(stage.duration)
        # Players get one second past the stage's end to finish connecting; Locust's own users do
        # not: from the stage's last second on, Locust already asks for the next stage's users.
        inside = [r.players for r in rows if start <= r.second - t0 < end + 1]
        peak = max(inside, default=0)
        seconds = [(s, loads) for s, loads in load if start <= s - t0 < end]
        users = _users_reached(seconds)
        per_worker = {
            w: {
                "users_planned": p["users_planned"],
                "users_reached": p["users_peak"],
                "peak_connected": p["connected_peak"],
            }
            for w, p in generator.load_peaks(seconds).items()
        }
        planned = int(stage.users)
        out.append(
            {"stage": i + 1, "users": planned, "peak_connected": peak, "users_reached": users, "per_worker": per_worker}
        )
        if peak < LOAD_REACHED * planned:
            where = f" in stage {i + 1}" if staged else ""
            span = f" between {start:g} s and {start + float(stage.duration):g} s" if staged else " at once"
            reasons.append(f"load not reached{where}: {_short_of(users, planned, peak, span, summary)}")
        start += float(stage.duration)
    return (max(int(s.users) for s in stages) if stages else None), out


class _WholeRun:
    """A run without ``[[load.stages]]`` judged as one stage."""

    def __init__(self, duration: float, users: int) -> None:
        self.duration, self.users = duration, users


def _users_reached(seconds: Sequence[tuple[int, dict[str, generator.WorkerLoad]]]) -> int | None:
    """The most Locust users running at once over every worker, or None when no sample recorded users."""
    totals = [
        sum(x.users for x in loads.values() if x.users is not None)
        for _, loads in seconds
        if any(x.users is not None for x in loads.values())
    ]
    return max(totals) if totals else None


def _short_of(users: int | None, planned: int, peak: int, span: str, summary: Mapping[str, Any]) -> str:
    """Where the load stopped short, in words: Locust did not run the users, or the users it ran
    did not get connected (and what their connects and requests met, with counts)."""
    if users is not None and users < LOAD_REACHED * planned:
        return f"Locust ran at most {users} of {planned} planned users, and at most {peak} players were connected{span}"
    why = _not_connected_why(summary)
    why = f": {why}" if why else ""
    if users is not None:
        return f"{users} of {planned} planned users ran, but at most {peak} of them were connected{span}{why}"
    return f"at most {peak} of {planned} planned players were connected{span}{why}"


def _not_connected_why(summary: Mapping[str, Any]) -> str:
    """What the players' connects and requests met: timed-out and failed WebSocket connects, and
    requests that got no answer, with their counts."""
    ws = summary.get("ws") or {}
    failed = dict(ws.get("connect_failed") or {})
    parts = []
    timed_out = int(failed.pop("timeout", 0))
    if timed_out:
        parts.append(f"{timed_out} WebSocket connects timed out")
    other = sum(int(n) for n in failed.values())
    if other:
        parts.append(f"{other} WebSocket connects failed ({', '.join(f'{k} x{v}' for k, v in sorted(failed.items()))})")
    for step, stats in sorted((summary.get("http") or {}).items()):
        silent = int((stats.get("status") or {}).get("0", 0))
        if silent:
            parts.append(f"{silent} {step} requests got no answer")
    return ", ".join(parts)


def _workers(reduction: Reduction, scenario: Any, reasons: list[str]) -> tuple[int | None, int, list[dict[str, Any]]]:
    gen = reduction.reducer(generator.NAME)
    spans: dict[str, tuple[int, int, int]] = getattr(gen, "workers", {})
    expected = int(scenario.workers) if scenario is not None else None
    last = reduction.last_second
    t0 = reduction.first_second or 0
    lost = []
    if last is not None:
        for worker, (_, last_seen, sessions) in sorted(spans.items()):
            if last_seen < last - WORKER_LOST_AFTER_S:
                users = _last_users(gen, worker)
                lost.append({"worker": worker, "last_seen_s": last_seen - t0, "sessions": sessions, "users": users})
    for w in lost:
        users = "" if w["users"] is None else f"{w['users']} users and "
        reasons.append(
            f"worker {w['worker']} was lost at {w['last_seen_s']} s with {users}{w['sessions']} open sessions; "
            "they ended with the generator, not the target"
        )
    if expected is not None and len(spans) < expected and last is not None:
        reasons.append(f"only {len(spans)} of {expected} worker processes ran players")
    return expected, len(spans), lost


def _last_users(gen: Any, worker: str) -> int | None:
    """A worker's Locust users at its last sample."""
    for _, loads in reversed(getattr(gen, "load", [])):
        if worker in loads:
            return loads[worker].users
    return None


def _storms(
    summary: Mapping[str, Any],
    settings: Mapping[str, Any],
    reasons: list[str],
    notes: list[str],
    reduction: Reduction | None = None,
) -> list[dict[str, Any]]:
    planned = sorted(settings.get("storms") or [], key=lambda s: float(s.get("at", 0)))
    recorded = list(summary["reconnect"]["by_storm"])
    failures = _storm_failures(summary)
    out = []
    for storm in planned:
        at, side = float(storm.get("at", 0)), str(storm.get("side", "server"))
        optional = bool(storm.get("optional", False))
        trigger = str((storm.get("trigger") or {}).get("kind", "chaos"))
        window = float(storm.get("window", 10.0)) if trigger != "chaos" else None
        match = next(
            (r for r in recorded if side in r["sides"] and abs(r["at_s"] - at) <= STORM_SLACK_S),
            None,
        )
        if match is not None:
            recorded.remove(match)
        dropped = None if match is None else int(match["dropped"])
        if match is not None and window is not None:
            dropped = _dropped_within(reduction, int(match["at_s"]), window, dropped)
        failed = failures.get(at)
        why = None
        if failed is not None:
            why = f"its {trigger} trigger failed: {failed}"
        elif match is None:
            why = "it was not set off (see locust.log: its trigger failed or was never reached)"
        elif side != "stall" and dropped == 0 and not _caught_by_relay(reduction, side, match["at_s"]):
            why = "it dropped no session" + (f" within {window:g} s of its {trigger} trigger" if window else "")
        out.append(
            {
                "at_s": at,
                "side": side,
                "carried_out": why is None,
                "dropped": dropped,
                "why": why,
                "trigger": trigger,
                "window_s": window,
            }
        )
        if why is not None:
            sentence = f"the {side}-side storm planned at {at:g} s was not carried out: {why}"
            (notes if optional else reasons).append(sentence + (" (optional)" if optional else ""))
    return out


def _storm_failures(summary: Mapping[str, Any]) -> dict[float, str]:
    """Planned second -> why its storm's trigger failed (the status, exit code or timeout)."""
    out: dict[float, str] = {}
    for failure in summary["reconnect"].get("storm_failures") or ():
        out.setdefault(float(failure["at_s"]), str(failure["why"]))
    return out


def _dropped_within(reduction: Reduction | None, start_s: int, window: float, whole: int | None) -> int | None:
    """Sessions the players saw dropped from a trigger's start to ``window`` seconds after it: the
    effect of a trigger whose own reply says nothing of it. Without per-second tables (a live view),
    the drops from the storm to the next one."""
    tables = reduction.tables if reduction is not None else None
    if tables is None or "reconnect" not in tables:
        return whole
    t0 = reduction.first_second or 0
    table = tables["reconnect"]
    return sum(
        int(row.get("dropped", 0))
        for second, row in zip(table.seconds, table.rows, strict=True)
        if start_s <= second - t0 <= start_s + window
    )


def _caught_by_relay(reduction: Reduction | None, side: str, at_s: float) -> bool:
    """A network storm that drops no one by design (``latency_spike``, a ``freeze`` that resumes) is
    carried out when the relay put sessions under it within :data:`STORM_SLACK_S` of this storm's
    own second: another storm of the same kind that caught sessions does not stand in for it."""
    from loadtest.collectors import network
    from loadtest.config.settings import NETWORK_STORMS

    if side not in NETWORK_STORMS or reduction is None or reduction.first_second is None:
        return False
    net = reduction.reducer(network.NAME)
    start = reduction.first_second + int(at_s)
    caught_between = getattr(net, "caught_between", None)
    return bool(caught_between and caught_between(side, start - 1, start + STORM_SLACK_S) > 0)


def _probes(
    summary: Mapping[str, Any],
    settings: Mapping[str, Any],
    reasons: list[str],
    notes: list[str],
    *,
    ended: bool = True,
) -> list[dict[str, Any]]:
    probes = settings.get("probes") or {}
    optional = set(probes.get("optional") or ())
    out: list[dict[str, Any]] = []

    def say(name: str, attempts: int, why: str | None, *, required: bool = True) -> None:
        out.append({"probe": name, "checked": why is None, "attempts": attempts, "why": why})
        if why is not None and name not in optional and required:
            reasons.append(f"{name} was not checked: {why}")
        elif why is not None:
            notes.append(f"{name} was not checked: {why}")

    replay = summary["replay"]
    if float(probes.get("replay_rate") or 0) > 0:
        skipped: dict[str, list[str]] = {}
        for key in replay["skipped"]:
            kind, _, why = key.partition(":")
            skipped.setdefault(kind, []).append(why)
        named = list(probes.get("replay_kinds") or ())
        started = replay.get("started") or {}
        requested = named or sorted(set(replay["by_kind"]) | set(skipped) | set(started))
        if not requested:
            say("replay", 0, "no replay attempt was made")
        for kind in requested:
            attempts = int(replay["by_kind"].get(kind, {}).get("attempts", 0))
            why = None
            if attempts == 0 and kind in skipped:
                why = "skipped: " + ", ".join(skipped[kind])
            elif attempts == 0 and started.get(kind) and not ended:
                # Still waiting (a ticket's expiry) in a run that goes on: neither done nor undone.
                out.append({"probe": f"replay {kind}", "checked": False, "attempts": 0, "why": "in progress"})
                continue
            elif attempts == 0 and started.get(kind):
                # Begun but never finished: it waits (a ticket's expiry) longer than the run lasted.
                why = f"{started[kind]} attempt(s) began but none finished before the run ended"
            elif attempts == 0:
                why = "no attempt was made"
            # A kind that cannot apply to this backend (JWT kinds on opaque tokens) is a fact about
            # the backend, not a probe left undone, unless the scenario asked for it by name.
            inapplicable = all(w.startswith("not_applicable") for w in skipped.get(kind, ["-"]))
            say(f"replay {kind}", attempts, why, required=bool(named) or not inapplicable)
    if probes.get("rate_limit_endpoint"):
        probe = summary["rate_limit"]["probe"]
        sent = sum(s["sent"] for s in probe["steps"]) if probe else 0
        say("the rate-limit probe", sent, None if sent else "it sent no request")
    if probes.get("cors_origins"):
        cors = summary.get("cors")
        checked = int(cors["checked"]) if cors else 0
        say("the CORS probe", checked, None if checked else "it made no preflight request")
    return out


def _silent_from(reduction: Reduction) -> int | None:
    """The run second from which every HTTP request failed without an answer, when that lasted
    to the end of the run for at least :data:`SILENT_TAIL_S` seconds."""
    tables = reduction.tables
    if tables is None or http.NAME not in tables or reduction.last_second is None:
        return None
    table = tables[http.NAME]
    answered: dict[int, int] = {}
    unanswered: dict[int, int] = {}
    for second, row in zip(table.seconds, table.rows, strict=True):
        zero = int(row.get("status_0", 0))
        unanswered[second] = unanswered.get(second, 0) + zero
        answered[second] = answered.get(second, 0) + int(row.get("requests", 0)) - zero
    if not unanswered:
        return None
    last_answer = max((s for s, n in answered.items() if n > 0), default=None)
    after = [s for s, n in unanswered.items() if n > 0 and (last_answer is None or s > last_answer)]
    if not after:
        return None
    start = min(after)
    if reduction.last_second - start + 1 < SILENT_TAIL_S:
        return None
    return start - (reduction.first_second or start)


def _worker_name(worker: str, short: bool) -> str:
    """A worker's id for a terminal line: Locust's ids are long (host name, then a uuid)."""
    return worker if not short or len(worker) <= 14 else "\N{HORIZONTAL ELLIPSIS}" + worker[-12:]


def load_lines(integrity: Mapping[str, Any], *, short: bool = False) -> list[str]:
    """The load plan against what happened, one line per stage and per worker: users planned,
    Locust users reached, players (connected sessions) reached. The terminal summary and the
    JUnit integrity case both say it in these words."""
    out = []
    for stage in integrity.get("stages") or ():
        users = stage.get("users_reached")
        reached = "-" if users is None else str(users)
        out.append(
            f"load stage {stage['stage']}: {stage['users']} users planned, {reached} users reached, "
            f"{stage['peak_connected']} players connected"
        )
        for worker, w in sorted((stage.get("per_worker") or {}).items()):
            planned, ran, connected = (
                "-" if w.get(k) is None else str(w[k]) for k in ("users_planned", "users_reached", "peak_connected")
            )
            out.append(
                f"  worker {_worker_name(worker, short)}: {planned} users planned, {ran} reached, "
                f"{connected} players connected"
            )
    return out
