"""Generator capacity and fidelity: our WebSocket engine against two baselines, in one run.

Each design runs as a real headless Locust process (bench/locustfiles/) against one 60 Hz tick
source in its own process (bench/tick_source.py), source and generator pinned to different cores.
For each design and session count: messages received per CPU-second of the generator, lag p50/p99
against the server's timestamps, missed ticks, RSS per session, and whether the process survived
and stopped cleanly. Ratios are ours/baseline from the same run.

    .venv/bin/python bench/ws_engine.py            # 200, 500, 1,000 sessions (~8 min)
    .venv/bin/python bench/ws_engine.py --quick    # 100 sessions, short windows (< 60 s)
"""

from __future__ import annotations

import argparse
import sys
import time
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
    "websocket-client": "wsclient_user.py",
    "websockets.sync": "wssync_user.py",
}
#: A generator above this CPU share of its core is saturated (the harness's own threshold).
SATURATED_PCT = 90.0
LAG_TARGET_MS = 17.0

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
    run = run_locust(
        DESIGNS[design], design, url=source.url, sessions=sessions, spawn_rate=spawn, run_time=run_time, core=gen_core
    )
    after = source.status()
    left = source.wait_connections(0, timeout=15)
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
    parser.add_argument("--designs", nargs="*", choices=list(DESIGNS), default=list(DESIGNS))
    parser.add_argument("--rate", type=float, default=60.0, help="ticks per second (60)")
    parser.add_argument("--out", help="JSON output path (bench/results/ws_engine-<time>.json)")
    args = parser.parse_args(argv)
    args.sessions = args.sessions or ([100] if args.quick else [200, 500, 1000])
    args.warmup, args.measure, args.spawn_rate = (2.0, 5.0, 100.0) if args.quick else (4.0, 20.0, 100.0)
    raise_fd_limit()
    src_core, gen_core = cores()
    say(f"tick source on core {src_core}, generator on core {gen_core}; {args.rate:g} Hz ticks")
    rows: list[dict[str, Any]] = []
    started = time.time()
    with tick_source(args.rate, src_core, max_seconds=3600) as source:
        for sessions in args.sessions:
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
    write_json(
        {
            "benchmark": "ws_engine",
            "machine": machine(),
            "started": started,
            "quick": args.quick,
            "rate_hz": args.rate,
            "cores": {"source": src_core, "generator": gen_core},
            "rows": rows,
            "ratios": ratios,
            "targets": targets,
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


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    at500 = next((r for r in rows if r["sessions"] == 500 and r["design"] == "engine"), None)
    base500 = next((r for r in rows if r["sessions"] == 500 and r["design"] == "websocket-client"), None)
    if at500 and base500:
        ratio = _ratio(at500.get("msgs_per_cpu_s"), base500.get("msgs_per_cpu_s"))
        results.append(
            verdict(
                "engine >= 2x websocket-client msgs/CPU-s at 500 sessions", bool(ratio and ratio >= 2), f"ratio {ratio}"
            )
        )
    else:
        results.append(verdict("engine >= 2x websocket-client msgs/CPU-s at 500 sessions", None, "not measured"))
    at1000 = next((r for r in rows if r["sessions"] == 1000 and r["design"] == "engine"), None)
    if at1000:
        cpu, lag = at1000.get("cpu_pct"), at1000.get("lag_p99_ms")
        below = cpu is not None and cpu < SATURATED_PCT
        passed = bool(below and lag is not None and lag <= LAG_TARGET_MS and at1000["survived"])
        results.append(
            verdict(
                "lag p99 <= 17 ms at 1,000 sessions per worker, below saturation",
                passed,
                f"lag p99 {lag} ms at CPU {cpu}% ({'below' if below else 'AT'} saturation)",
            )
        )
    else:
        results.append(verdict("lag p99 <= 17 ms at 1,000 sessions per worker, below saturation", None, "not measured"))
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
        say(f"INFO  largest measured engine load below saturation with lag p99 <= 17 ms: {best['sessions']} sessions")
    return results


if __name__ == "__main__":
    sys.exit(main())
