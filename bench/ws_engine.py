"""Generator capacity and fidelity: our WebSocket engine against baselines, in one run.

Each Python design runs as a real headless Locust process (bench/locustfiles/) against one 60 Hz
tick source in its own process (bench/tick_source.py), source and generator pinned to different
cores; Artillery 2 (bench/artillery_baseline.py) runs pinned to the generator's core the same way.
Our engine runs with every collector on (lag, jitter, missed ticks, inputs at 20 Hz and their
acks); ``engine`` is its default transport (picows + uvloop), ``engine-websockets`` the portable
fallback (websockets + asyncio's selector loop).
For each design and session count: messages received per CPU-second of the generator, lag p50/p99
against the server's timestamps, missed ticks, RSS per session, and whether the process survived
and stopped cleanly. Ratios are ours/baseline from the same run.

    .venv/bin/python bench/ws_engine.py            # 200, 500, 1,000 sessions (~8 min)
    .venv/bin/python bench/ws_engine.py --quick    # 100 sessions, short windows (< 60 s)
    .venv/bin/python bench/ws_engine.py --together --designs engine engine-no-inputs artillery

``--together`` runs the designs of a session count at the same time against the one source
(each pinned to the generator core, CPU per process): on a shared machine each then sees the same
ticks, the same source lateness and the same neighbours, where one after the other they may not
(a reader that gets fewer ticks batches them and looks cheaper per message).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    cores,
    machine,
    raise_fd_limit,
    run_locust,
    say,
    table,
    tick_source,
    verdict,
    window_stats,
    write_json,
)

DESIGNS = {
    "engine": "engine_user.py",
    "engine-websockets": "engine_user.py",
    "engine-no-inputs": "engine_user.py",
    "artillery": "",
    "websocket-client": "wsclient_user.py",
    "websockets.sync": "wssync_user.py",
}
DEFAULT_DESIGNS = ["engine", "engine-websockets", "artillery", "websocket-client"]
#: Environment of each Locust design beyond the shared one.
DESIGN_ENV = {
    "engine": {"LOADTEST_WS_TRANSPORT": "picows", "LOADTEST_WS_LOOP": "uvloop"},
    "engine-websockets": {"LOADTEST_WS_TRANSPORT": "websockets", "LOADTEST_WS_LOOP": "asyncio"},
    # What inputs cost: the engine as a run uses it, minus the 20 Hz inputs Artillery never sends.
    "engine-no-inputs": {"LOADTEST_WS_TRANSPORT": "picows", "LOADTEST_WS_LOOP": "uvloop", "BENCH_INPUT_RATE": "0"},
}
#: A generator above this CPU share of its core is saturated (the harness's own threshold).
SATURATED_PCT = 90.0
#: One tick period at 60 Hz.
LAG_TARGET_MS = 16.7
#: Our engine's msgs/CPU-s over Artillery's, at 500 and 1,000 sessions.
ARTILLERY_RATIO = 1.3

COLUMNS = [
    ("sessions", "sessions"),
    ("design", "design"),
    ("msgs_per_cpu_s", "msgs / CPU-s"),
    ("messages_per_s", "msgs / s"),
    ("cpu_pct", "CPU %"),
    ("lag_p50_ms", "lag p50 ms"),
    ("lag_p99_ms", "lag p99 ms"),
    ("missed", "missed"),
    ("rss_per_session_kb", "RSS/session KB"),
    ("survived", "survived"),
    ("stopped_cleanly", "stopped cleanly"),
]


def measure(design: str, sessions: int, args: argparse.Namespace, source: Any, gen_core: str | None) -> dict[str, Any]:
    spawn = min(args.spawn_rate, sessions)
    run_time = sessions / spawn + args.warmup + args.measure + 3
    before = source.status()
    say(f"  {design:<17} {sessions:>5} sessions: running ~{run_time:.0f} s ...")
    if design == "artillery":
        from bench import artillery_baseline

        try:
            run = artillery_baseline.run(
                url=source.url, sessions=sessions, spawn_rate=spawn, run_time=run_time, core=gen_core
            )
        except artillery_baseline.Unavailable as exc:
            say(f"    -> Artillery unavailable: {exc}")
            return {"design": design, "sessions": sessions, "ok": False, "survived": False, "error": str(exc)}
    else:
        run = run_locust(
            DESIGNS[design],
            design,
            url=source.url,
            sessions=sessions,
            spawn_rate=spawn,
            run_time=run_time,
            core=gen_core,
            extra_env=DESIGN_ENV.get(design),
        )
    after = source.status()
    # Together, the others' sockets are still open: main() checks once all designs have stopped.
    left = 0 if args.together else source.wait_connections(0, timeout=15)
    stats = window_stats(run, warmup=args.warmup, rate=args.rate)
    row = {
        "design": design,
        "sessions": sessions,
        **stats,
        "survived": run.survived,
        "stopped_cleanly": run.stopped_cleanly and run.survived and left == 0,
        "returncode": run.returncode,
        "exit_after_run_time_s": run.exit_after_s,
        "sockets_left_at_source": left,
        "source_skipped_frames": int(after.get("skipped", 0)) - int(before.get("skipped", 0)),
        "source_late_max_ms": after.get("late_max_ms"),
        "source_late_total_max_ms": after.get("late_total_max_ms"),
        "source_tick_hz": _rate(before, after, "ticks"),
        "source_inputs": int(after.get("inputs", 0)) - int(before.get("inputs", 0)),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(run.peak_rss / 1e6, 1),
        "connect_failures": run.meter.get("connect_failures"),
        "errors": run.meter.get("errors", [])[:5],
    }
    if not run.survived or not stats.get("ok"):
        row["stderr_tail"] = run.stderr_tail[-800:]
    say(
        f"    -> {row.get('msgs_per_cpu_s')} msgs/CPU-s, CPU {row.get('cpu_pct')}%, "
        f"lag p99 {row.get('lag_p99_ms')} ms, survived {row['survived']}, clean stop {row['stopped_cleanly']}"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 sessions, short windows (< 60 s)")
    parser.add_argument("--sessions", type=int, nargs="*", help="session counts (200 500 1000)")
    parser.add_argument("--designs", nargs="*", choices=list(DESIGNS), default=DEFAULT_DESIGNS)
    parser.add_argument("--rate", type=float, default=60.0, help="ticks per second (60)")
    parser.add_argument("--together", action="store_true", help="a session count's designs at the same time")
    parser.add_argument("--out", help="JSON output path (bench/results/ws_engine-<time>.json)")
    args = parser.parse_args(argv)
    args.sessions = args.sessions or ([100] if args.quick else [200, 500, 1000])
    args.warmup, args.measure, args.spawn_rate = (2.0, 5.0, 100.0) if args.quick else (4.0, 20.0, 100.0)
    raise_fd_limit()
    src_core, gen_core = cores()
    say(f"tick source on core {src_core}, generator on core {gen_core}; {args.rate:g} Hz ticks")
    say(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    rows: list[dict[str, Any]] = []
    started = time.time()
    with tick_source(args.rate, src_core, max_seconds=3600) as source:
        for sessions in args.sessions:
            if args.together:
                n = len(args.designs)
                with ThreadPoolExecutor(n) as pool:
                    batch = list(
                        pool.map(measure, args.designs, [sessions] * n, [args] * n, [source] * n, [gen_core] * n)
                    )
                left = source.wait_connections(0, timeout=15)  # every design's sockets, once all have stopped
                for row in batch:
                    row["sockets_left_at_source"] = left
                    row["stopped_cleanly"] = row["stopped_cleanly"] and left == 0
                rows.extend(batch)
                continue
            for design in args.designs:
                rows.append(measure(design, sessions, args, source, gen_core))
    say("")
    say(table(rows, COLUMNS))
    ratios = ratio_rows(rows)
    if ratios:
        say("")
        say(
            table(
                ratios,
                [
                    ("sessions", "sessions"),
                    ("baseline", "baseline"),
                    ("cpu_ratio", "msgs/CPU-s ours/baseline"),
                    ("lag_ratio", "lag p99 ours/baseline"),
                ],
            )
        )
    say("")
    targets = check_targets(rows)
    say(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    write_json(
        {
            "benchmark": "ws_engine",
            "machine": machine(),
            "started": started,
            "quick": args.quick,
            "rate_hz": args.rate,
            "together": args.together,
            "cores": {"source": src_core, "generator": gen_core},
            "rows": rows,
            "ratios": ratios,
            "targets": targets,
            "load_avg_end": os.getloadavg(),
        },
        args.out,
        "ws_engine",
    )
    return 0


def ratio_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for sessions in sorted({r["sessions"] for r in rows}):
        ours = next((r for r in rows if r["sessions"] == sessions and r["design"] == "engine"), None)
        if ours is None:
            continue
        for base in (r for r in rows if r["sessions"] == sessions and r["design"] != "engine"):
            out.append(
                {
                    "sessions": sessions,
                    "baseline": base["design"],
                    "cpu_ratio": _ratio(ours.get("msgs_per_cpu_s"), base.get("msgs_per_cpu_s")),
                    "lag_ratio": _ratio(ours.get("lag_p99_ms"), base.get("lag_p99_ms")),
                }
            )
    return out


def _rate(before: dict[str, Any], after: dict[str, Any], key: str) -> float | None:
    span = float(after.get("t", 0)) - float(before.get("t", 0))
    return round((int(after.get(key, 0)) - int(before.get(key, 0))) / span, 2) if span > 0 else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _row(rows: list[dict[str, Any]], design: str, sessions: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["sessions"] == sessions and r["design"] == design and r.get("ok")), None)


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for sessions in (500, 1000):
        name = f"engine >= {ARTILLERY_RATIO}x Artillery msgs/CPU-s at {sessions:,} sessions, every collector on"
        ours, base = _row(rows, "engine", sessions), _row(rows, "artillery", sessions)
        if ours and base:
            ratio = _ratio(ours.get("msgs_per_cpu_s"), base.get("msgs_per_cpu_s"))
            detail = f"ratio {ratio} ({ours.get('msgs_per_cpu_s')} vs {base.get('msgs_per_cpu_s')}), same run"
            results.append(verdict(name, bool(ratio and ratio >= ARTILLERY_RATIO), detail))
        else:
            results.append(verdict(name, None, "not measured"))
    name = f"lag p99 <= {LAG_TARGET_MS} ms at 1,000 sessions at 60 Hz in one worker, below saturation"
    at1000 = _row(rows, "engine", 1000)
    if at1000:
        cpu, lag = at1000.get("cpu_pct"), at1000.get("lag_p99_ms")
        below = cpu is not None and cpu < SATURATED_PCT
        passed = bool(below and lag is not None and lag <= LAG_TARGET_MS and at1000["survived"])
        detail = (
            f"lag p99 {lag} ms at CPU {cpu}% ({'below' if below else 'AT'} saturation); "
            f"the tick source ran {at1000.get('source_tick_hz')} Hz, its loop at most "
            f"{at1000.get('source_late_total_max_ms')} ms late"
        )
        results.append(verdict(name, passed, detail))
    else:
        results.append(verdict(name, None, "not measured"))
    engine_ok = [
        r
        for r in rows
        if r["design"] == "engine"
        and r.get("ok")
        and (r.get("cpu_pct") or 100) < SATURATED_PCT
        and (r.get("lag_p99_ms") or 1e9) <= LAG_TARGET_MS
    ]
    if engine_ok:
        best = max(engine_ok, key=lambda r: r["sessions"])
        say(f"INFO  largest engine load below saturation with lag p99 <= {LAG_TARGET_MS} ms: {best['sessions']}")
    return results


if __name__ == "__main__":
    sys.exit(main())
